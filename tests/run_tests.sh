#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# tests/run_tests.sh - the dm-chain test runner (kselftest style, TAP 13).
#
#   tests/run_tests.sh [-k KVER]... [--host-only|--guest-only] [TEST...]
#	Boot guests (tools/guest-run; all at once unless GUEST_PARALLEL=0) to
#	run the executable tests/guest/*.sh, and run every executable
#	tests/host/*.sh here meanwhile, but those listed as host_last= in
#	tests/settings (they boot guests of their own): they start when the
#	first guest boot has ended.  The first kernel runs every guest
#	test, in three guests (tests/settings second_guest=, third_guest=);
#	the others all but first_only= ones (all with FULL=1).  One TAP line per test file
#	and one per guest boot (clean kernel log, exit status reported, in
#	time); ends with "N passed, N failed[, N skipped]"; exits 1 if
#	anything failed.
#   tests/run_tests.sh --in-guest [TEST...]
#	Inside a guest (tools/guest-run calls this): run the guest tests here.
#
# TEST is a name like "smoke", "guest/smoke" or "host/format"; default all
# (or $TESTS) but any listed as slow= in tests/settings unless SLOW=1.
# Kernels default to $KERNELS, else $KVER, else 6.1.
# A test exits 0 pass, 1 fail, 4 skip; anything else is a failure.  The
# per-test time limit is in tests/settings; the kernel log is checked
# after every guest test.
set -uo pipefail

tests_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$tests_dir")
export CHAIN_ROOT=$repo

mode=host
kernels=()
selected=()
while [ $# -gt 0 ]; do
	case "$1" in
	-k|--kver)	kernels+=("$2"); shift 2 ;;
	--host-only)	mode=host-only; shift ;;
	--guest-only)	mode=guest-only; shift ;;
	--in-guest)	mode=in-guest; shift ;;
	-h|--help)	sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*)		echo "run_tests.sh: unknown option $1" >&2; exit 2 ;;
	*)		selected+=("$1"); shift ;;
	esac
done
if [ ${#selected[@]} -eq 0 ] && [ -n "${TESTS:-}" ]; then
	read -r -a selected <<< "$TESTS"
fi
if [ ${#kernels[@]} -eq 0 ]; then
	read -r -a kernels <<< "${KERNELS:-${KVER:-6.1}}"
fi

per_test_timeout=$(sed -n 's/^timeout=//p' "$tests_dir/settings" 2>/dev/null)
per_test_timeout=${TEST_TIMEOUT:-${per_test_timeout:-600}}

# Tests too slow for one CI run on both kernels (tests/settings "slow=");
# they run when named, or with SLOW=1.
read -r -a slow_tests <<< "$(sed -n 's/^slow=//p' "$tests_dir/settings" 2>/dev/null)"

is_slow() {
	local t
	for t in "${slow_tests[@]}"; do [ "$t" = "$1" ] && return 0; done
	return 1
}

# list KIND : the selected executable tests/KIND/*.sh, as KIND/name.
list() {
	local kind=$1 f name s
	for f in "$tests_dir/$kind"/*.sh; do
		[ -x "$f" ] || continue
		name=$(basename "$f" .sh)
		if [ ${#selected[@]} -eq 0 ] && [ "${SLOW:-0}" != 1 ] && is_slow "$name"; then
			continue
		fi
		if [ ${#selected[@]} -gt 0 ]; then
			for s in "${selected[@]}"; do
				s=${s%.sh}; s=${s#tests/}
				[ "$s" = "$name" ] || [ "$s" = "$kind/$name" ] && break
				s=
			done
			[ -n "$s" ] || continue
		fi
		echo "$kind/$name"
	done
}

n=0 passed=0 failed=0 skipped=0

result() {	# result pass|fail|skip NAME [reason]
	n=$((n + 1))
	case "$1" in
	pass)	passed=$((passed + 1)); echo "ok $n - $2" ;;
	skip)	skipped=$((skipped + 1)); echo "ok $n - $2 # SKIP ${3:-}" ;;
	*)	failed=$((failed + 1)); echo "not ok $n - $2${3:+ # $3}" ;;
	esac
}

summary() {
	local s="$passed passed, $failed failed"
	[ $skipped -gt 0 ] && s="$s, $skipped skipped"
	echo "$s"
	[ $failed -eq 0 ]
}

# limit_of KIND/NAME : its time limit: tests/settings timeout_NAME=, else
# timeout= (TEST_TIMEOUT overrides both).
limit_of() {
	local l
	l=$(sed -n "s/^timeout_${1##*/}=//p" "$tests_dir/settings" 2>/dev/null)
	echo "${TEST_TIMEOUT:-${l:-$per_test_timeout}}"
}

# exec_one KIND/NAME [guest] : run one test file in its time limit, its
# output to stdout; its exit status.
exec_one() {
	local t=$1 limit
	limit=$(limit_of "$t")
	[ "${2:-}" = guest ] && echo "dm-chain-test: begin $t" > /dev/kmsg
	(cd "$repo" && TEST_NAME=$t timeout -k 10 "$limit" \
		"$tests_dir/$t.sh" < /dev/null 2>&1)
}

# report_one KIND/NAME RC OUT SECONDS [guest] : the test's TAP line.
report_one() {
	local t=$1 rc=$2 out=$3 reason=
	echo "# $t took $4 s"
	# A test that passed but left a kernel warning behind still fails.
	if [ "${5:-}" = guest ] && [ "$rc" -eq 0 ]; then
		# shellcheck source=lib.sh
		if ! (TEST_NAME=$t; . "$tests_dir/lib.sh"; trap - EXIT; kmsg_check "$t"); then
			reason="kernel log has warnings"
			rc=1
		fi
	fi
	case $rc in
	0)	result pass "$t" ;;
	4)	result skip "$t" "$(sed -n 's/.*# SKIP *//p' "$out" | head -n 1)" ;;
	124|137) result fail "$t" "timed out after $(limit_of "$t") s" ;;
	*)	result fail "$t" "${reason:-exit status $rc}" ;;
	esac
}

# run_one KIND/NAME [guest] : run one test file, its output as comments
# as it comes.
run_one() {
	local t=$1 out rc start
	out=$(mktemp /tmp/dm-chain-test.XXXXXX)
	start=$(date +%s)
	exec_one "$t" "${2:-}" | tee "$out" | sed -u 's/^/# /'
	rc=${PIPESTATUS[0]}
	report_one "$t" "$rc" "$out" $(( $(date +%s) - start )) "${2:-}"
	rm -f "$out"
}

# reset_guest T : tests share one guest; whatever test T left behind (a
# killed test cannot clean up) is removed so the next one starts clean.
reset_guest() {
	local left
	left=$(dmsetup ls 2>/dev/null | grep -v '^No devices found' | awk '{print $1}' | tr '\n' ' ')
	if [ -n "$left" ]; then
		echo "# warning: $1 left dm devices behind: $left"
		dmsetup remove_all --force >/dev/null 2>&1
	fi
	for m in dm_chain dm_hold brd dm_log_writes dm_flakey dm_delay dm_snapshot dm_thin_pool; do
		grep -q "^$m " /proc/modules || continue
		[ $m = dm_chain ] && echo "# warning: $1 left dm_chain loaded"
		rmmod $m 2>/dev/null || echo "# warning: cannot unload $m after $1"
	done
	losetup -D 2>/dev/null
}

if [ $mode = in-guest ]; then
	mapfile -t gtests < <(list guest)
	echo "TAP version 13"
	echo "1..${#gtests[@]}"
	for t in "${gtests[@]}"; do
		run_one "$t" guest
		reset_guest "$t"
	done
	summary
	exit $?
fi

# ---------------------------------------------------------------- host

mapfile -t htests < <(list host)
mapfile -t gtests < <(list guest)
[ $mode = guest-only ] && htests=()
# Host tests that boot guests of their own (crash_jobs) use these kernels.
export CHAIN_KERNELS="${kernels[*]}"
if [ $mode = host-only ] || [ ${#gtests[@]} -eq 0 ]; then
	kernels=()
fi
if [ ${#selected[@]} -gt 0 ] && [ $((${#htests[@]} + ${#gtests[@]})) -eq 0 ]; then
	echo "run_tests.sh: no test matches: ${selected[*]}" >&2
	exit 2
fi

# The guest boots ("units", KVER.N): kernels after the first run only
# the tests not listed as first_only= in tests/settings, kernels before
# the last only those not listed as last_only= (all with FULL=1, or when
# tests are named).  On the first kernel, which runs the most,
# the tests listed as second_guest= and third_guest= run in a second and
# a third guest beside the first, so that no one guest is the long pole
# of the run.
read -r -a first_only <<< "$(sed -n 's/^first_only=//p' "$tests_dir/settings" 2>/dev/null)"
# last_only=: guest tests that run on the last kernel only (the same rule).
read -r -a last_only <<< "$(sed -n 's/^last_only=//p' "$tests_dir/settings" 2>/dev/null)"
read -r -a second <<< "$(sed -n 's/^second_guest=//p' "$tests_dir/settings" 2>/dev/null)"
read -r -a third <<< "$(sed -n 's/^third_guest=//p' "$tests_dir/settings" 2>/dev/null)"
# other_kernels_env=: settings for the guests of kernels after the first
# (none with FULL=1 or when tests are named), for shorter forms there.
read -r -a other_env <<< "$(sed -n 's/^other_kernels_env=//p' "$tests_dir/settings" 2>/dev/null)"
if [ ${#selected[@]} -ne 0 ] || [ "${FULL:-0}" = 1 ]; then
	other_env=()
fi
listed() {	# listed TEST NAME... : TEST (guest/x) is one of the names
	local t=$1 f
	shift
	for f in "$@"; do [ "$t" = "guest/$f" ] && return 0; done
	return 1
}
gdir=$(mktemp -d /tmp/dm-chain-guests.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$gdir"' EXIT
units=()
nguest=0
for k in "${kernels[@]}"; do
	for u in 1 2 3; do : > "$gdir/list.$k.$u"; done
	for t in "${gtests[@]}"; do
		if [ ${#selected[@]} -eq 0 ] && [ "${FULL:-0}" != 1 ] &&
		   { { [ "$k" != "${kernels[0]}" ] && listed "$t" "${first_only[@]}"; } ||
		     { [ "$k" != "${kernels[-1]}" ] && listed "$t" "${last_only[@]}"; }; }; then
			continue
		fi
		if [ "$k" = "${kernels[0]}" ] && listed "$t" "${second[@]}"; then
			echo "$t" >> "$gdir/list.$k.2"
		elif [ "$k" = "${kernels[0]}" ] && listed "$t" "${third[@]}"; then
			echo "$t" >> "$gdir/list.$k.3"
		else
			echo "$t" >> "$gdir/list.$k.1"
		fi
	done
	for u in 1 2 3; do
		[ -s "$gdir/list.$k.$u" ] || continue
		units+=("$k.$u")
		nguest=$((nguest + $(wc -l < "$gdir/list.$k.$u") + 1))
	done
done

echo "TAP version 13"
echo "1..$(( ${#htests[@]} + nguest ))"

# Every kernel's guest boots first, in the background, and the host tests
# (crash_jobs boots guests of its own) run beside them: a TCG guest keeps
# about one core busy, and CI has two.  The guests' output is read back
# in order afterwards, the first one as it comes.  GUEST_PARALLEL=0 boots
# them one after another, after the host tests.
declare -A gpid=()

boot() {	# boot UNIT : its guest tests on its kernel, output to $gdir/UNIT
	local tests guest_timeout=30 t envs=()
	mapfile -t tests < "$gdir/list.$1"
	[ "${1%.*}" = "${kernels[0]}" ] || envs=("${other_env[@]}")
	for t in "${tests[@]}"; do
		guest_timeout=$((guest_timeout + $(limit_of "$t") + 15))
	done
	: > "$gdir/$1"
	(start=$(date +%s)
	 cd "$repo" && env "${envs[@]}" "$repo/tools/guest-run" -k "${1%.*}" -t "$guest_timeout" \
			-- tests/run_tests.sh --in-guest "${tests[@]}" >> "$gdir/$1" 2>&1
	 rc=$?
	 echo "the guest boot took $(( $(date +%s) - start )) s" >> "$gdir/$1"
	 echo "@@guest-run-exit $rc" >> "$gdir/$1") &
	gpid[$1]=$!
}

parallel=${GUEST_PARALLEL:-1}
if [ "$parallel" != 0 ]; then
	for u in "${units[@]}"; do boot "$u"; done
fi

# host_last=: host tests that boot guests of their own (crash_jobs, dkms);
# they start when the first guest boot has ended, beside each other, not
# beside all of them: a TCG guest beside four others took nine times as
# long as alone.  The other host tests run while the guests boot.
read -r -a host_last <<< "$(sed -n 's/^host_last=//p' "$tests_dir/settings" 2>/dev/null)"
is_last() {	# is_last host/NAME : listed as host_last=
	local f
	for f in "${host_last[@]}"; do [ "$1" = "host/$f" ] && return 0; done
	return 1
}
for t in "${htests[@]}"; do
	is_last "$t" || run_one "$t"
done

# The host_last tests start once the first guest boot has ended (at once
# without guests, or with GUEST_PARALLEL=0), beside each other.
lastpid=
if [ ${#host_last[@]} -gt 0 ]; then
	(if [ "$parallel" != 0 ]; then
		while [ ${#units[@]} -gt 0 ]; do
			for u in "${units[@]}"; do
				grep -qs '^@@guest-run-exit' "$gdir/$u" && break 2
			done
			sleep 10
		done
	 fi
	 for t in "${htests[@]}"; do
		is_last "$t" || continue
		(start=$(date +%s)
		 exec_one "$t" > "$gdir/host.${t#host/}" 2>&1
		 echo "$? $(( $(date +%s) - start ))" > "$gdir/host.${t#host/}.rc") &
	 done
	 wait) &
	lastpid=$!
fi

# Each boot's TAP lines are renumbered into ours and everything else is
# passed on as comments.
for u in "${units[@]}"; do
	k=${u%.*}
	rel=$("$repo/tools/kver" "$k" 2>/dev/null) || rel=$k
	case ${u##*.} in 2) rel="$rel, 2nd guest" ;; 3) rel="$rel, 3rd guest" ;; esac
	[ "$parallel" != 0 ] || boot "$u"
	mapfile -t ktests < "$gdir/list.$u"
	echo "# guest $rel runs: ${ktests[*]}"
	declare -A seen=()
	grc=
	# Follow the file as it grows, to the exit line the boot ends it with
	# (guest-run's own time limit guarantees that line).
	pending=
	while :; do
		if IFS= read -r chunk; then
			line=$pending$chunk
			pending=
		else
			pending=$pending$chunk
			sleep 1
			continue
		fi
		line=${line%$'\r'}
		if [[ "$line" =~ ^@@guest-run-exit\ ([0-9]+)$ ]]; then
			grc=${BASH_REMATCH[1]}
			break
		elif [[ "$line" =~ ^(not )?ok\ [0-9]+\ -\ ([^ ]+)(\ \#\ (.*))?$ ]]; then
			name=${BASH_REMATCH[2]}
			extra=${BASH_REMATCH[4]}
			seen[$name]=1
			if [ -n "${BASH_REMATCH[1]}" ]; then
				result fail "$name [$rel]" "$extra"
			elif [[ "$extra" == SKIP* ]]; then
				result skip "$name [$rel]" "${extra#SKIP }"
			else
				result pass "$name [$rel]"
			fi
		else
			echo "# $line"
		fi
	done < "$gdir/$u"
	wait "${gpid[$u]}"
	for t in "${ktests[@]}"; do
		[ -n "${seen[$t]:-}" ] || result fail "$t [$rel]" "no result: the guest died or timed out"
	done
	unset seen
	# guest-run: 0/1 is the suite's own verdict (counted above); 3 kernel
	# log warnings, 124 time limit, 125 no exit status, 2 setup error.
	case "$grc" in
	0|1)	result pass "guest boot [$rel]: exit status reported, kernel log clean" ;;
	3)	result fail "guest boot [$rel]" "kernel log has warnings (excerpt above)" ;;
	124)	result fail "guest boot [$rel]" "guest hit its time limit" ;;
	125)	result fail "guest boot [$rel]" "guest reported no exit status" ;;
	*)	result fail "guest boot [$rel]" "guest-run exit status ${grc:-unknown}" ;;
	esac
done

[ -z "$lastpid" ] || wait "$lastpid"
for t in "${htests[@]}"; do
	is_last "$t" || continue
	echo "# $t (host_last: begun once a guest boot had ended):"
	sed 's/^/# /' "$gdir/host.${t#host/}"
	read -r rc secs < "$gdir/host.${t#host/}.rc"
	report_one "$t" "${rc:-1}" "$gdir/host.${t#host/}" "${secs:-?}"
done

summary
