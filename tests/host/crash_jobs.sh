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
# chain or the new one, with what was flushed, never a mix.  Four more
# jobs are ready at the power cut (active commit, copy full, shallow and
# raw): back up they copy everything again, reach ready, hold every write
# on the destination, and pivot.  On the first kernel five more devices
# come from a chaintab
# (a snapshot, two pivots and a lone raw copy held at their chaintab
# steps, a pull running): one chainadm assemble --all must bring each
# back as flushed, its line naming the top it runs on.
set -uo pipefail
HOST_DIR=$(cd "$(dirname "$0")" && pwd)
TOP_DIR=$(cd "$HOST_DIR/../.." && pwd)

read -r -a kernels <<< "${CHAIN_KERNELS:-${KVER:-6.1}}"

# The guest's disk is a host file; only QEMU is killed, never the host, so
# a file in memory keeps what QEMU wrote as one on disk does, without a
# host fdatasync for every flush of the guest's.  /var/tmp if /dev/shm
# has less than 4 GiB free (CRASH_TMP overrides).
tmp=/var/tmp
[ "$(df --output=avail /dev/shm 2>/dev/null | tail -1)" -gt $((4 << 20)) ] 2>/dev/null &&
	tmp=/dev/shm

nr=0 failed=0
# result ok|fail DESCRIPTION [LOG] : one TAP line; a failure's LOG tail
# follows as comments.
result() {
	nr=$((nr + 1))
	if [ "$1" = ok ]; then
		echo "ok $nr - $2"
	else
		echo "not ok $nr - $2"
		failed=1
		[ -n "${3:-}" ] && sed 's/^/# /' "$3" | tail -40
	fi
}

# one_kernel K TAB : both boots for kernel K, two results; TAB "tab" or
# "notab": the chaintab cases (userspace only) or not.
one_kernel() {
	local k=$1 work rc t0
	work=$(mktemp -d "${CRASH_TMP:-$tmp}/dm-chain-crash.XXXXXX")
	t0=$(date +%s)
	truncate -s 1880M "$work/disk"
	"$TOP_DIR/tools/guest-run" -k "$k" -t 1800 --disk "$work/disk" \
		--outdir "$work" --kill-on KILL-NOW \
		-- bash "$HOST_DIR/crash_jobs.guest" start "$work" "$2" > "$work/start.log" 2>&1
	rc=$?
	echo "# [$k] the boot to the power cut took $(( $(date +%s) - t0 )) s"
	t0=$(date +%s)
	if [ $rc = 0 ] && grep -q KILL-NOW "$work/start.log"; then
		result ok "[$k] four jobs running, power cut"
	else
		result fail "[$k] four jobs running, power cut (guest-run $rc)" "$work/start.log"
		result fail "[$k] after reboot: not run"
		rm -rf "$work"
		return
	fi
	"$TOP_DIR/tools/guest-run" -k "$k" -t 1800 --disk "$work/disk" \
		--outdir "$work" -- bash "$HOST_DIR/crash_jobs.guest" check "$work" "$2" \
		> "$work/check.log" 2>&1
	rc=$?
	echo "# [$k] the boot after it took $(( $(date +%s) - t0 )) s"
	sed 's/^/# /' "$work/check.log" | grep -E '^# (ok|not ok|failures)'
	if [ $rc = 0 ]; then
		result ok "[$k] after reboot: same content, every job resumed and finished, every table change cut short recovered old or new"
	else
		result fail "[$k] after reboot (guest-run $rc)" "$work/check.log"
	fi
	rm -rf "$work"
}

echo "TAP version 13"
echo "1..$((2 * ${#kernels[@]}))"
# One kernel after the other: both kernels' boots at once on two idle
# cores took 545 s, 6.1's first boot 229 s of it against 103 s alone (a
# 2-CPU TCG guest loses more than its share beside another); in turn,
# beside dkms, they took 446 s in CI-24.
# The chaintab cases change no kernel code: the first kernel runs them
# (CRASH_TAB=tab or notab forces it for every kernel).
for k in "${kernels[@]}"; do
	tab=notab
	[ "$k" = "${kernels[0]}" ] && tab=tab
	one_kernel "$k" "${CRASH_TAB:-$tab}"
done
exit $failed
