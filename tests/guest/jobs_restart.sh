#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# What a job's destination owes (issue 16): at `ready` or `completed` it
# holds every write the guest had acknowledged, through failures, resumes,
# restarts (the device removed and created again from the same layers, as
# after a reboot) at every phase, and a cancel followed at once by a new
# job.  Chain base <- l1 <- top over loop devices, 8 MiB, 64 KiB clusters;
# the base and the destinations sit behind dm-linear devices whose tables
# are switched to error or dm-delay.  Every check compares bytes: the
# destination assembled alone (while the device is suspended, so no write
# slips in) against a model of what the guest wrote.
#
#   1 active commit ready, restarted: comes back running, copies
#     everything again; writes after the restart reach the base
#   2 active commit, base fails while ready: failed; writes while failed;
#     base healed, 'job resume': ready, and the base holds every write
#   3 raw mirror, destination fails while ready, resumed (issue 16's
#     reproducer without chainadm)
#   4 mirror to a chain layer failed, healed, restarted: comes back
#     failed; resumed, ready with every write
#   5 pull paused, restarted: comes back paused; resumed, completes
#   6 intermediate commit running, restarted: resumes from its cursor
#   7 pull completed, restarted: comes back completed, done == total
#   8 shallow copy running, restarted: resumes onto its own destination
#   9 cancel while a guest write's copy is held by a slow base, then a
#     new job at once: the cancel waits for the copy (before the fix the
#     new job closed the destination under it: NULL dereference)
#  10 raw mirror to a destination known to read zeros (dest_zeroed): a
#     cluster it holds is zeroed by the guest while the destination fails;
#     resumed, the owed cluster is zeroed there too, not skipped as
#     "reads zeros already"
#  11 (issue 18) the owed bitmap in chunks of 4096 clusters, allocated
#     when owed: a raw mirror (dest_zeroed) of a 64 MiB layer of 4 KiB clusters, 4 chunks,
#     fails while ready; clusters owed in three chunks, then with every
#     chunk allocation failing (chain-inject fail_owe) a write and a
#     zeroing in the fourth: without a chunk the walk goes back to the
#     cluster instead, and must not trust dest_zeroed past it any more.
#     Resumed: ready, and the destination holds every write.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup blkdiscard cmp
chain_load_module || die "cannot load dm-chain"
modprobe dm-delay || skip_all "no dm-delay"
modprobe loop
inject_load_module || die "cannot load tests/kmod/chain-inject.ko"
P=/sys/module/chain_inject/parameters
kmsg_mark

CA="$CHAIN_ROOT/userspace/chainadm"
MIB=8
SECTORS=$((MIB * 2048))
CL=65536
NC=$((MIB * 16))
W=$(mktemp -d /tmp/jobs-restart.XXXXXX)
D=/dev/mapper/jr
on_exit rm -rf "$W"
on_exit detach_loops "$W"
on_exit dm_remove jr-f1
on_exit dm_remove jr-fo
on_exit dm_remove jr-fd
on_exit dm_remove jr-fb
on_exit dm_remove jr
on_exit dm_remove jr-chk
cd "$W" || die "no scratch"

# make stress (STRESS=1): the same cases, RESTART_ROUNDS rounds (default
# 10), with other random data each time.
ROUNDS=1
[ "${STRESS:-0}" = 1 ] && ROUNDS=${RESTART_ROUNDS:-10}
tap_plan $((35 * ROUNDS + 1))

# put MODEL CLUSTER COUNT TAG : flushed random clusters on $D and in
# MODEL (TAG names the write in the script).
put() {
	head -c $(($3 * CL)) /dev/urandom > wbuf
	dd if=wbuf of=$D bs=64k seek="$2" oflag=direct conv=fsync status=none ||
		die "writing clusters $2.. failed"
	dd if=wbuf of="$1" bs=64k seek="$2" conv=notrunc status=none
}

# retable NAME TABLE : switch a dm device's table (the fault switch).
retable() {
	dmsetup suspend --noflush "$1" && dmsetup load "$1" --table "$2" &&
		dmsetup resume "$1"
}

# alone_is TABLE MODEL : while $D is suspended, the device TABLE (the
# destination alone) shows MODEL byte for byte.
alone_is() {
	local r
	dmsetup suspend jr || return 1
	dmsetup create jr-chk --readonly --table "$1" || { dmsetup resume jr; return 1; }
	cmp -n $((MIB << 20)) /dev/mapper/jr-chk "$2"
	r=$?
	dm_remove jr-chk
	dmsetup resume jr
	return $r
}

# restart : remove $D and create it again with the same table.
restart() {
	local t
	t=$(dmsetup table jr | cut -d' ' -f3-)
	dm_remove jr && dmsetup create jr --table "0 $SECTORS $t"
}

phase() { job_field jr phase; }
jr_table() { dmsetup create jr --table "0 $SECTORS chain $*"; }

# ---- The layers, built once: clusters 0..9 in no layer, the base holds
# 10..49, l1 40..79, top 70..99; 100..127 in none.
"$CA" format -q -s ${MIB}M base
"$CA" format -q -s ${MIB}M -b base l1
"$CA" format -q -s ${MIB}M -b l1 top
"$CA" format -q -s ${MIB}M dest
"$CA" format -q -s ${MIB}M -b l1 shallow
truncate -s $((MIB << 20)) model destraw
loop_setup B base; loop_setup L1 l1; loop_setup T top
loop_setup M dest; loop_setup S shallow; loop_setup R destraw
dmsetup create jr-fb --table "0 $(dev_sectors "$B") linear $B 0"
dmsetup create jr-fd --table "0 $(dev_sectors "$M") linear $M 0"
dmsetup create jr-f1 --table "0 $(dev_sectors "$L1") linear $L1 0"
FB=/dev/mapper/jr-fb FD=/dev/mapper/jr-fd F1=/dev/mapper/jr-f1
jr_table 1 chain $FB
put model 10 40 1
dm_remove jr; jr_table 2 chain $FB $F1
put model 40 40 2
cp model model.l1
dm_remove jr; jr_table 3 chain $FB $F1 $T
put model 70 30 3
dm_remove jr
# Case 11: a 64 MiB layer of 4 KiB clusters (4 chunks of the owed
# bitmap, 4096 clusters each) holding clusters 1, 5000, 8199, 9000 and
# 16000, and a sparse raw destination.
OCL=4096
OSECT=$((16384 * OCL / 512))
"$CA" format -q -s $((OSECT / 2))K -c $OCL obig
truncate -s $((OSECT * 512)) omodel oraw
loop_setup O obig; loop_setup OR oraw
dmsetup create jr-fo --table "0 $OSECT linear $OR 0"
FO=/dev/mapper/jr-fo
dmsetup create jr --table "0 $OSECT chain 1 chain $O"
# oput <cluster>: random data into a cluster of case 11, and its model
oput() {
	head -c $OCL /dev/urandom > wbuf
	dd if=wbuf of=$D bs=$OCL seek="$1" oflag=direct conv=fsync status=none ||
		die "writing cluster $1 failed"
	dd if=wbuf of=omodel bs=$OCL seek="$1" conv=notrunc status=none
}
for c in 1 5000 8199 9000 16000; do oput $c; done
dm_remove jr
mkdir saved && cp --sparse=always base l1 top dest shallow destraw model model.l1 \
	obig omodel oraw saved/

# fresh : every file as built, the fault devices linear, no $D.
fresh() {
	dm_remove jr
	retable jr-fb "0 $(dev_sectors "$B") linear $B 0"
	retable jr-fd "0 $(dev_sectors "$M") linear $M 0"
	retable jr-f1 "0 $(dev_sectors "$L1") linear $L1 0"
	retable jr-fo "0 $OSECT linear $OR 0"
	cp --sparse=always saved/* . || die "cannot restore the layers"
}
FULL="3 chain $FB $F1 $T"

# top_alone : with the layers below the active one failing, the device
# still reads as the model (direct reads: nothing from the page cache).
top_alone() {
	local r
	retable jr-fb "0 $(dev_sectors "$B") error" &&
	retable jr-f1 "0 $(dev_sectors "$L1") error" || return 1
	cmp -n $((MIB << 20)) <(dd if=$D bs=64k iflag=direct status=none) model
	r=$?
	retable jr-fb "0 $(dev_sectors "$B") linear $B 0"
	retable jr-f1 "0 $(dev_sectors "$L1") linear $L1 0"
	return $r
}

# one_round : cases 1-11 (35 checks).
one_round() {
	# ---- 1. active commit, ready, restarted
	fresh
	jr_table $FULL
	dmsetup message jr 0 commit 2 0
	wait_job_phase jr 60 ready || die "the active commit never got ready"
	restart
	tap_check "1 a ready active commit comes back running, not ready with nothing copied" \
		test "$(phase)" != ready -o "$(job_field jr done)" -gt 0
	put model 0 2 11; put model 20 2 12; put model 105 3 13
	wait_job_phase jr 60 ready
	tap_check "1 ready again, the base holds every write (before and after the restart)" \
		alone_is "0 $SECTORS chain 1 chain $FB" model

	# ---- 2. active commit, the base fails while ready, resumed
	fresh
	jr_table $FULL
	dmsetup message jr 0 commit 2 0
	wait_job_phase jr 60 ready || die "the active commit never got ready"
	retable jr-fb "0 $(dev_sectors "$B") error"
	put model 30 2 21		# copied to the base: fails, retried, fails
	tap_check "2 a failed copy stops the job: failed" wait_job_phase jr 30 failed
	put model 5 1 22; put model 75 1 23; put model 30 1 24
	# (reads of the base's own clusters, 10..39, need the failed device)
	tap_check "2 the guest's I/O that does not need the base works while failed" \
		cmp -n $(((NC - 40) * CL)) <(dd if=$D bs=64k skip=40 status=none) \
		    <(dd if=model bs=64k skip=40 status=none)
	retable jr-fb "0 $(dev_sectors "$B") linear $B 0"
	dmsetup message jr 0 job resume
	tap_check "2 healed and resumed: ready" wait_job_phase jr 60 ready
	tap_check "2 the base holds the writes made while failed" \
		alone_is "0 $SECTORS chain 1 chain $FB" model
	errors=$(job_field jr errors)
	log "2: errors counted: $errors"
	tap_check "2 the error count: each of 1..64 failed syncs tried 4 times" \
		test $((errors % 4)) = 0 -a "$errors" -ge 4 -a "$errors" -le 256

	# ---- 3. raw mirror, the destination fails while ready, resumed
	fresh
	retable jr-fd "0 $(dev_sectors "$R") linear $R 0"
	jr_table $FULL 4 mirror $FD raw full
	wait_job_phase jr 60 ready || die "the raw mirror never got ready"
	retable jr-fd "0 $(dev_sectors "$R") error"
	put model 12 1 31
	tap_check "3 the raw mirror stops: failed" wait_job_phase jr 30 failed
	put model 13 1 32; put model 101 2 33
	retable jr-fd "0 $(dev_sectors "$R") linear $R 0"
	dmsetup message jr 0 job resume
	tap_check "3 healed and resumed: ready" wait_job_phase jr 60 ready
	put model 14 1 34
	tap_check "3 the raw destination holds every write" \
		alone_is "0 $SECTORS linear $FD 0" model

	# ---- 4. mirror to a chain layer, failed, restarted while failed
	fresh
	jr_table $FULL 4 mirror $FD chain full
	wait_job_phase jr 60 ready || die "the mirror never got ready"
	retable jr-fd "0 $(dev_sectors "$M") error"
	put model 50 1 41
	wait_job_phase jr 30 failed || die "the mirror did not fail"
	put model 51 2 42
	# (while it fails, the destination's header cannot be read: no table)
	retable jr-fd "0 $(dev_sectors "$M") linear $M 0"
	restart
	tap_check "4 a failed mirror comes back failed" test "$(phase)" = failed
	put model 52 1 43
	dmsetup message jr 0 job resume
	tap_check "4 healed and resumed: ready" wait_job_phase jr 60 ready
	tap_check "4 the destination holds every write" \
		alone_is "0 $SECTORS chain 1 chain $FD" model

	# ---- 5. pull, paused, restarted
	fresh
	jr_table $FULL 1 bandwidth:131072
	dmsetup message jr 0 stream
	wait_job_phase jr 30 running
	sleep 1
	dmsetup message jr 0 job pause
	put model 60 1 51
	restart
	tap_check "5 a paused pull comes back paused" test "$(phase)" = paused
	d0=$(job_field jr done)
	sleep 1
	tap_check "5 ... and copies nothing while paused" test "$(job_field jr done)" = "$d0"
	dmsetup message jr 0 job bandwidth 0
	dmsetup message jr 0 job resume
	tap_check "5 resumed: completed" wait_job_phase jr 60 completed
	tap_check "5 the active layer alone holds the whole disk" top_alone

	# ---- 6. intermediate commit, running, restarted
	fresh
	jr_table $FULL 1 bandwidth:131072
	dmsetup message jr 0 commit 1 0
	wait_job_phase jr 30 running
	sleep 1
	put model 45 1 61		# to top: not part of the commit
	restart
	tap_check "6 a running commit comes back running" test "$(phase)" = running
	dmsetup message jr 0 job bandwidth 0
	tap_check "6 ... and completes" wait_job_phase jr 60 completed
	tap_check "6 the base holds base and l1 merged" \
		alone_is "0 $SECTORS chain 1 chain $FB" model.l1
	tap_check "6 the device shows every write" cmp -n $((MIB << 20)) $D model

	# ---- 7. pull, completed, restarted
	fresh
	jr_table $FULL
	dmsetup message jr 0 stream
	wait_job_phase jr 60 completed || die "the pull never completed"
	restart
	tap_check "7 a completed pull comes back completed, done == total" \
		test "$(phase)" = completed -a "$(job_field jr done)" = "$(job_field jr total)"
	tap_check "7 the active layer alone holds the whole disk" top_alone

	# ---- 8. shallow copy, running, restarted
	fresh
	jr_table $FULL 5 mirror $S chain shallow bandwidth:131072
	wait_job_phase jr 30 running
	sleep 1
	put model 90 2 81; put model 3 1 82
	restart
	tap_check "8 a running shallow copy restarts onto its own destination" \
		wait_job_phase jr 10 running ready
	dmsetup message jr 0 job bandwidth 0
	wait_job_phase jr 60 ready
	put model 91 1 83
	tap_check "8 ready, the destination over the layers below holds every write" \
		alone_is "0 $SECTORS chain 3 chain $FB $F1 $S" model

	# ---- 9. cancel with a guest copy held by a slow base, a new job at once
	fresh
	jr_table $FULL
	dmsetup message jr 0 commit 2 0
	wait_job_phase jr 60 ready || die "the active commit never got ready"
	dmsetup message jr 0 job pause
	sleep 1
	# The base writes now take 3 s: a guest write to cluster 2 (in no layer:
	# its copy allocates a base cluster) waits for it.
	retable jr-fb "0 $(dev_sectors "$B") delay $B 0 0 $B 0 3000 $B 0 0"
	put model 2 1 91 &
	wpid=$!
	sleep 1
	dmsetup message jr 0 job cancel
	dmsetup message jr 0 commit 2 0
	wait $wpid
	tap_check "9 the guest write held by the cancelled job completed" test $? = 0
	retable jr-fb "0 $(dev_sectors "$B") linear $B 0"
	tap_check "9 the new job gets ready" wait_job_phase jr 60 ready
	tap_check "9 the base holds every write" alone_is "0 $SECTORS chain 1 chain $FB" model

	# ---- 10. dest_zeroed raw mirror, a cluster zeroed while failed
	fresh
	retable jr-fd "0 $(dev_sectors "$R") linear $R 0"
	jr_table $FULL 5 mirror $FD raw full dest_zeroed
	wait_job_phase jr 60 ready || die "the raw mirror never got ready"
	retable jr-fd "0 $(dev_sectors "$R") error"
	blkdiscard -z -o $((12 * CL)) -l $CL $D || die "write zeroes failed"
	dd if=/dev/zero of=model bs=64k seek=12 count=1 conv=notrunc status=none
	tap_check "10 the copy of the zeroed cluster fails: failed" wait_job_phase jr 30 failed
	retable jr-fd "0 $(dev_sectors "$R") linear $R 0"
	dmsetup message jr 0 job resume
	tap_check "10 healed and resumed: ready" wait_job_phase jr 60 ready
	tap_check "10 the destination shows the zeroed cluster as zeros" \
		alone_is "0 $SECTORS linear $FD 0" model

	# ---- 11. owed clusters in four chunks, one without memory
	fresh
	dmsetup create jr --table "0 $OSECT chain 1 chain $O 5 mirror $FO raw full dest_zeroed"
	wait_job_phase jr 60 ready || die "the 64 MiB raw mirror never got ready"
	retable jr-fo "0 $OSECT error"
	oput 4100		# chunk 1: the copy fails
	tap_check "11 the raw mirror stops: failed" wait_job_phase jr 30 failed
	oput 10; oput 12300; oput 4101
	f0=$(cat $P/failed)
	echo 1 > $P/fail_owe
	oput 8200		# chunk 2, no memory: back to 8200
	blkdiscard -z -o $((8199 * OCL)) -l $OCL $D || die "write zeroes failed"
	dd if=/dev/zero of=omodel bs=$OCL seek=8199 count=1 conv=notrunc status=none
	oput 12301		# past the cursor now: the walk copies it
	oput 11		# chunk 0 is there: noted
	echo 0 > $P/fail_owe
	tap_check "11 the chunk allocations for 8200 and 8199 failed" \
		test $(($(cat $P/failed) - f0)) -ge 2
	retable jr-fo "0 $OSECT linear $OR 0"
	dmsetup message jr 0 job resume
	tap_check "11 healed and resumed: ready" wait_job_phase jr 120 ready
	oput 16383
	dmsetup suspend jr || die "cannot suspend jr"
	tap_check "11 the raw destination holds every write" cmp $FO omodel
	dmsetup resume jr
}

for ((round = 0; round < ROUNDS; round++)); do
	[ "$ROUNDS" = 1 ] || log "round $((round + 1)) of $ROUNDS"
	one_round
done
tap_check "the kernel log is clean" kmsg_check

tap_done
