#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Faults under a source layer and under the destination while jobs run:
# the job stops after bounded retries with the error in its status and an
# event; guest I/O that does not need the failing device keeps working;
# what the status counts as copied was copied (checked on the data); once
# the device is healthy again 'job resume' finishes the job correctly.
#
# Layers are loop devices; the one that fails sits behind a dm device
# whose table is switched from linear to error (source) or to dm-flakey
# failing writes (destination).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
chain_load_module || die "cannot load dm-chain"
modprobe dm-flakey || skip_all "no dm-flakey"

CA="$CHAIN_ROOT/userspace/chainadm"
MIB=16
SECTORS=$((MIB * 2048))
CL=65536
W=$(mktemp -d /tmp/jobs-faults.XXXXXX)
on_exit rm -rf "$W"
cd "$W" || die "no scratch"

tap_plan 11

status_field() { dmsetup status "$1" | awk -v n="$2" '{print $n}'; }
done_bytes() { status_field "$1" 12 | cut -d/ -f1; }

# wait_for DEV PHASE : wait on dm events until the job reaches PHASE
wait_for() {
	local dev=$1 want=$2 ev p
	for _ in $(seq 120); do
		p=$(status_field "$dev" 11)
		[ "$p" = "$want" ] && return 0
		case $p in completed|failed|cancelled|-)
			echo "# $dev: job is $p, not $want"; return 1 ;;
		esac
		ev=$(dmsetup info -c --noheadings -o events "$dev" | tr -d ' ')
		timeout 5 dmsetup wait "$dev" "$ev" >/dev/null 2>&1
	done
	return 1
}

# put FILE MODEL CLUSTER COUNT SEED DEV : flushed pseudo-random clusters
put() {
	python3 -c "import random,sys;sys.stdout.buffer.write(random.Random($5).randbytes($4*$CL))" > wbuf
	dd if=wbuf of="$6" bs=64k seek="$3" oflag=direct conv=fsync status=none ||
		die "writing clusters $3.. to $6 failed"
	dd if=wbuf of="$2" bs=64k seek="$3" conv=notrunc status=none
}

# ---- 1. commit l2..l1 into the raw base; l1 starts failing half-way
dd if=/dev/urandom of=base bs=1M count=$MIB status=none
cp base model
"$CA" format -q -s ${MIB}M -b base -F raw l1
"$CA" format -q -s ${MIB}M -b l1 l2
"$CA" format -q -s ${MIB}M -b l2 top
loop_setup B base; loop_setup L1 l1; loop_setup L2 l2; loop_setup T top
dmsetup create flt-l1 --table "0 $(dev_sectors "$L1") linear $L1 0"
on_exit dmsetup remove --retry flt-l1
F1=/dev/mapper/flt-l1
D=/dev/mapper/jf
dmsetup create jf --table "0 $SECTORS chain 2 raw $B $F1"
on_exit dm_remove jf
put l1 model 0 80 1 $D		# clusters 0..79 in l1
dmsetup suspend jf; dmsetup load jf --table "0 $SECTORS chain 3 raw $B $F1 $L2"; dmsetup resume jf
put l2 model 120 40 2 $D		# 120..159 in l2
cp model expected_base
# 256 KiB/s from the start (a table feature), so the job is still in l1's
# clusters when it is paused below.
dmsetup suspend jf; dmsetup load jf --table "0 $SECTORS chain 4 raw $B $F1 $L2 $T 1 bandwidth:262144"; dmsetup resume jf
put top model 200 10 3 $D		# 200..209 in top

# The job copies in cluster order, l1's clusters first.  Once some are
# copied, pause it, make l1 fail, and let it run at full speed.
dmsetup message jf 0 commit 2 0
for _ in $(seq 60); do
	[ "$(done_bytes jf)" -gt 0 ] && break
	ev=$(dmsetup info -c --noheadings -o events jf | tr -d ' ')
	timeout 5 dmsetup wait jf "$ev" >/dev/null 2>&1
done
dmsetup message jf 0 job pause
log "paused after $(done_bytes jf) bytes"
dmsetup suspend --noflush flt-l1
dmsetup load flt-l1 --table "0 $(dev_sectors "$L1") error"
dmsetup resume flt-l1
dmsetup message jf 0 job bandwidth 0
dmsetup message jf 0 job resume
tap_check "source fault: the commit stops with phase failed" wait_for jf failed
tap_check "source fault: the status names EIO as the last error" \
	test "$(status_field jf 16)" = 5
errors=$(status_field jf 15)
log "errors counted: $errors"
tap_check "source fault: retries are bounded (errors counted, but not endless)" \
	test "$errors" -ge 1 -a "$errors" -le 400
sleep 1
tap_check "source fault: no more retries once stopped" test "$(status_field jf 15)" = "$errors"

# What the status counts as copied is in the base, cluster for cluster.
done_b=$(done_bytes jf)
copied=$(python3 - base expected_base <<'EOF'
import sys
b = open(sys.argv[1], 'rb').read(); e = open(sys.argv[2], 'rb').read()
CL = 65536
print(sum(1 for c in list(range(0, 80)) + list(range(120, 160))
          if b[c*CL:(c+1)*CL] == e[c*CL:(c+1)*CL]))
EOF
)
log "status says $done_b bytes copied; the base holds $copied copied clusters"
tap_check "source fault: nothing is counted as copied that was not" \
	test "$done_b" -le $((copied * CL))

# Guest I/O that does not need l1 works: reads from l2, top and the base,
# and new writes.
# (cmp -n: a short read must fail the check, not pass it.)
tap_check "source fault: reads not touching l1 return the right data" \
	cmp -n $((100 * CL)) <(dd if=$D bs=64k skip=120 count=100 status=none) \
	    <(dd if=model bs=64k skip=120 count=100 status=none)
put top model 230 4 4 $D
tap_check "source fault: writes keep working" \
	cmp -n $((4 * CL)) <(dd if=$D bs=64k skip=230 count=4 status=none) \
	    <(dd if=model bs=64k skip=230 count=4 status=none)

# l1 comes back: resume finishes the commit and the base is right.
dmsetup suspend --noflush flt-l1
dmsetup load flt-l1 --table "0 $(dev_sectors "$L1") linear $L1 0"
dmsetup resume flt-l1
dmsetup message jf 0 job resume
tap_check "source fault healed: 'job resume' completes the commit" wait_for jf completed
tap_check "source fault healed: the base holds l1 and l2 merged" cmp base expected_base
dmsetup message jf 0 job cancel
dm_remove jf

# ---- 2. mirror to a chain destination whose writes start failing
"$CA" format -q -s ${MIB}M dest
loop_setup M dest
dmsetup create flt-dest --table "0 $(dev_sectors "$M") linear $M 0"
on_exit dmsetup remove --retry flt-dest
dmsetup create jf --table "0 $SECTORS chain 4 raw $B $L1 $L2 $T 4 mirror /dev/mapper/flt-dest chain full"
wait_for jf ready
dmsetup suspend --noflush flt-dest
dmsetup load flt-dest --table "0 $(dev_sectors "$M") flakey $M 0 0 1 1 error_writes"
dmsetup resume flt-dest
# A guest write to a synced cluster now fails on the destination: the
# job stops, the guest's write still succeeds on the chain.
put top model 240 2 5 $D
tap_check "destination fault: the mirror stops with phase failed" wait_for jf failed
put top model 245 2 6 $D
tap_check "destination fault: the guest sees every write it made" \
	cmp -n $((MIB << 20)) $D model
dmsetup message jf 0 job cancel
dm_remove jf
tap_done
