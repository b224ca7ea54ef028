#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Hard power-off in the middle of every job type.  For each kernel in
# $CHAIN_KERNELS (default 6.1): one guest builds four chains on a virtio
# disk backed by a host file, starts a stream, a commit, an active commit
# and a mirror (slowed to 32 KiB/s), writes and flushes during them, and is
# killed (QEMU SIGKILL); a second guest re-creates the devices from the
# same layers and checks that they show what was flushed, that every job
# resumes from its record and finishes, and what each one wrote.  The same
# power cut catches five chainadm table changes, each held at one step by
# CHAINADM_TEST_STALL (pivot intent, pivot headers, copy swapped, commit
# completion headers): after reboot chainadm recover must assemble the old
# chain or the new one, with what was flushed, never a mix.
set -uo pipefail
HOST_DIR=$(cd "$(dirname "$0")" && pwd)
TOP_DIR=$(cd "$HOST_DIR/../.." && pwd)

read -r -a kernels <<< "${CHAIN_KERNELS:-${KVER:-6.1}}"

# one_kernel K OUT : both boots for kernel K; "OK|FAIL<tab>description"
# lines into OUT, comments (the guests' checks, logs) into OUT.log.
one_kernel() {
	local k=$1 out=$2 work rc
	work=$(mktemp -d /var/tmp/dm-chain-crash.XXXXXX)
	truncate -s 920M "$work/disk"
	"$TOP_DIR/tools/guest-run" -k "$k" -t 900 --disk "$work/disk" \
		--outdir "$work" --kill-on KILL-NOW \
		-- bash "$HOST_DIR/crash_jobs.guest" start "$work" > "$work/start.log" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q KILL-NOW "$work/start.log"; then
		printf 'OK\t[%s] four jobs running, power cut\n' "$k" >> "$out"
	else
		printf 'FAIL\t[%s] four jobs running, power cut (guest-run %s)\n' "$k" $rc >> "$out"
		printf 'FAIL\t[%s] after reboot: not run\n' "$k" >> "$out"
		sed 's/^/# /' "$work/start.log" | tail -40 >> "$out.log"
		rm -rf "$work"
		return
	fi
	"$TOP_DIR/tools/guest-run" -k "$k" -t 900 --disk "$work/disk" \
		--outdir "$work" -- bash "$HOST_DIR/crash_jobs.guest" check "$work" \
		> "$work/check.log" 2>&1
	rc=$?
	sed 's/^/# /' "$work/check.log" | grep -E '^# (ok|not ok|failures)' >> "$out.log"
	if [ $rc = 0 ]; then
		printf 'OK\t[%s] after reboot: same content, every job resumed and finished, every table change cut short recovered old or new\n' "$k" >> "$out"
	else
		printf 'FAIL\t[%s] after reboot (guest-run %s)\n' "$k" $rc >> "$out"
		sed 's/^/# /' "$work/check.log" | tail -40 >> "$out.log"
	fi
	rm -rf "$work"
}

echo "TAP version 13"
echo "1..$((2 * ${#kernels[@]}))"
res=$(mktemp -d /tmp/dm-chain-crash-res.XXXXXX)
trap 'rm -rf "$res"' EXIT
# One kernel after the other: make check runs this beside the guest
# suites, and two more guests at once left a 6.12 boot past its 900 s on
# two cores.
for i in "${!kernels[@]}"; do
	one_kernel "${kernels[$i]}" "$res/$i"
done
nr=0 failed=0
for i in "${!kernels[@]}"; do
	[ -f "$res/$i.log" ] && cat "$res/$i.log"
	while IFS=$'\t' read -r st desc; do
		nr=$((nr + 1))
		if [ "$st" = OK ]; then
			echo "ok $nr - $desc"
		else
			echo "not ok $nr - $desc"
			failed=1
		fi
	done < "$res/$i"
done
exit $failed
