#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# chainadm assemble reads /etc/chaintab (here $CHAINADM_CHAINTAB): every
# refused line is named, with its line number and what is wrong, and
# nothing is assembled from it; the command line is checked.  Lines that
# are right reach device-mapper, which the guest test chaintab covers.
. "$(dirname "$0")/host-lib.inc"

plan 14
export CHAINADM_CHAINTAB=$SCRATCH/chaintab

# refused CONTENT WORD DESC : assemble --all fails (2) naming line 2 and WORD
refused() {
	printf '# a comment\n%s\n' "$1" > "$CHAINADM_CHAINTAB"
	run "$CHAINADM" assemble --all
	if [ $RC = 2 ] && grep -q "chaintab:2: .*$2" <<< "$ERR" && [ -z "$OUT" ]; then
		pass "$3"
	else
		fail "$3" "exit $RC" "stdout: $OUT" "stderr: $ERR"
	fi
}

refused "vm1" "names no top layer" "a line without a top layer is refused"
refused "vm1 relative/top.chain" "absolute path" "a relative top layer is refused"
refused "vm1 /l/top.chain raw,nodiscard" "unknown option 'nodiscard'" "an unknown option is refused, naming it"
refused "vm1 /l/top.chain no-space-timeout=soon" "takes a number of seconds" "no-space-timeout=<not a number> is refused"
refused "vm1 /l/top.chain noauto=1" "takes no value" "an option that takes no value is refused with one"
refused "vm1 /l/top.chain ignore-discard,ignore-discard" "given twice" "an option given twice is refused"
refused "vm1 /l/top.chain defaults extra" "more than three fields" "a fourth field is refused"
refused "a/b /l/top.chain" "not a device name" "a name with a slash is refused"

printf 'vm1 /l/a.chain noauto\n\n  # indented comment\nvm1 /l/b.chain noauto\n' > "$CHAINADM_CHAINTAB"
run "$CHAINADM" assemble --all
if [ $RC = 2 ] && grep -q "chaintab:4: .*already listed on line 1" <<< "$ERR"; then
	pass "a device listed twice is refused on its second line"
else
	fail "a device listed twice is refused on its second line" "exit $RC" "$ERR"
fi

printf 'vm1 /l/a.chain noauto\nvm2 /l/b.chain _netdev\n' > "$CHAINADM_CHAINTAB"
run "$CHAINADM" assemble --all
if [ $RC = 0 ] && grep -q "no device to assemble" <<< "$OUT"; then
	pass "--all skips noauto and _netdev lines"
else
	fail "--all skips noauto and _netdev lines" "exit $RC" "$OUT" "$ERR"
fi
printf 'vm1 /l/a.raw raw,ignore-discard,noauto\r\n# CRLF, as from another system\r\n' > "$CHAINADM_CHAINTAB"
run "$CHAINADM" assemble --all
if [ $RC = 0 ] && [ -z "$ERR" ]; then
	pass "CRLF line ends, and a lone raw device with table features, are accepted"
else
	fail "CRLF line ends, and a lone raw device with table features, are accepted" "exit $RC" "$ERR"
fi

rm -f "$CHAINADM_CHAINTAB"
run "$CHAINADM" assemble --all
if [ $RC = 0 ] && grep -q "no such file: nothing to assemble" <<< "$OUT"; then
	pass "no chaintab: --all has nothing to do, and says so"
else
	fail "no chaintab: --all has nothing to do, and says so" "exit $RC" "$OUT" "$ERR"
fi
run "$CHAINADM" assemble vm9
if [ $RC = 2 ] && grep -q "vm9: is not listed in $CHAINADM_CHAINTAB" <<< "$ERR"; then
	pass "a name the chaintab does not list is refused, naming the file"
else
	fail "a name the chaintab does not list is refused, naming the file" "exit $RC" "$ERR"
fi

ok=1
for args in "" "--all vm1" "--netdev vm1" "--all --bogus"; do
	# shellcheck disable=SC2086
	run "$CHAINADM" assemble $args
	[ $RC = 1 ] || { ok=0; echo "# assemble $args: exit $RC $ERR"; }
done
if [ $ok = 1 ]; then
	pass "assemble needs --all or names, not both; --netdev only with --all (exit 1)"
else
	fail "assemble needs --all or names, not both; --netdev only with --all (exit 1)"
fi
finish
