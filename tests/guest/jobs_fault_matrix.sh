#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The fault matrix of issue 16: every job type, a fault under a source
# layer and under the destination, a fault that heals by itself before the
# job's retries run out and one that lasts until it is healed by hand.
# Every cell runs on a fresh copy of one chain and writes the guest's data
# throughout, into a model of the disk as well (tests/progs/chain-iotest
# --op), and ends compared byte for byte with the model: the device after
# completion or pivot, and the result reassembled from its layers alone
# (for a copy: the destination alone).
#
#   job            started with                     ends with
#   stream         chainadm pull --base $DEV[3]     job --wait (completion)
#   commit         chainadm commit --top $DEV[1]    job --wait (completion)
#                    --base $DEV[3]
#   active commit  chainadm commit --active         job --pivot
#   mirror full    chainadm copy                    job --pivot
#   mirror shallow chainadm copy --shallow          job --pivot
#   mirror raw     chainadm copy --raw (a raw       job --pivot
#                    device)
#
# The chain: a raw base, 8 MiB of random data, under three chain layers
# l1 <- l2 <- top, 64 KiB clusters (in units of NC/128 clusters: base only
# 0-7 and 72-127; l1 only 8-31, top has 20-21 as ZERO; l2 over l1 32-47,
# l2 48-63 partly copied up, ZERO 100-101; top 56-59 and 64-71).  Every
# layer, and the destination, is a "hold" device (tests/kmod/dm-hold.c, a
# linear map) over a slice of one loop device, so a fault goes in and out
# without touching the chain's own table:
#
#   lasting    the faulty device's table is switched (load, resume
#              --noflush: dm suspends without flushing, swaps, resumes)
#              to one with an "error" segment, and back to hold when
#              healed, then 'chainadm job --resume';
#   transient  dm-hold's "fail <sector> <#sectors> <op> 3": the next three
#              bios that touch the range fail, then it works again.  Three
#              is JOB_RETRIES, the most a copy can survive, whatever the
#              timing (a timed window would race the 100 ms between tries
#              on a loaded TCG guest).
#
# Where the fault sits:
#
#   source  one cluster X the job reads from a source layer (l1; top for a
#           shallow copy), from before the job starts: the bandwidth limit
#           has the walk reach X after about a second, mid-job;
#   dest    stream: top's host cluster of the stream's last copy onward
#           (lasting) or of a copy half-way (transient); commit: the raw
#           base's cluster X; active commit and mirrors: the whole raw
#           destination, or a chain destination's data area (its header
#           and table stay writable: a failed metadata write turns the
#           destination read-only for good, see the note at the end), put
#           in once the job is ready; then one guest write to a cluster T
#           makes the job copy into it.
#
# Guest writes (whole clusters, partial ones with copy-up, all with fresh
# random data) go before the job, while the fault is in and the job runs,
# while the job is failed, after the resume, and at ready; each is
# recorded into the model.  They keep away from the faulty cluster (and
# for a fault under top's data area from new clusters in top, for a fault
# under the whole raw base from copy-ups out of it): "guest I/O that does
# not need the failed device goes on" is checked by their success and by
# reads compared with the model while the job is failed.
#
# The error count (the status's <errors>) is bounded exactly.  From
# kernel/dm-chain-job.c: a copy ("sync") is tried 1 + JOB_RETRIES = T = 4
# times, every failed try counts one error (sync_retry_or_fail), and the
# job fails when one sync has failed T times.  A failed batch of the walk
# fails every sync in it, each counting one: at most B = 1 MiB / 64 KiB =
# 16 syncs (JOB_BATCH_SECTORS); retries and guest writes' copies are
# single-cluster dm-kcopyd copies.  A sync that failed keeps its in-flight
# slot until it ends, so with a whole device failing, up to
# max_in_flight = 64 syncs (4 MiB) can fail before the first one has used
# its tries, each up to T times, plus their batch-mates: a bound of
# hundreds that tests nothing.  A one-cluster fault lets only the syncs of
# that cluster fail more than once, and only the one batch that first
# copied it be in flight at the hit:
#
#   lasting, one cluster (source X, commit's base X)  T <= errors <= T + B - 1
#       (X's batch of b syncs fails once, X then T - 1 times alone)
#   transient, one sector of that cluster             R <= errors <= R + B - 1
#       (R = JOB_RETRIES = 3 failed bios: X's batch, then X alone twice)
#   lasting, stream's destination from its last copy  T <= errors <= T * B
#       (only the syncs of the last batch get a host in the range, and
#       retries hand the freed clusters around among them)
#   transient, stream's destination, one sector       R <= errors <= R * B
#       (each of the 3 failed bios fails one copy of at most B syncs; a
#       freed host cluster goes to the next allocation, batch or retry)
#   lasting at ready                                   errors == T
#   transient at ready                                 errors == R
#       (the walk is done: the only copy is the one guest write's, issued
#       alone, one cluster, one bio per try)
#
# and errors does not change from the failure to the end (no retries
# once stopped, no errors after the heal).
#
# Short form (make check): the 24 cells once, 8 MiB, fault before the
# walk gets to it.  Long form (STRESS=1, make stress): FM_ROUNDS rounds
# (default 4) of the matrix on 32 MiB, X, T and the clusters the guest
# writes drawn at random per round (FM_SEED, printed, replays a run), and
# a lasting source fault put in at a random moment while the job runs
# before X (bounds unchanged).  FM_CELLS="stream/src/lasting ..." runs
# only those cells; FM_TRACE=1 traces every command with a timestamp.
#
# Note: a fault under a chain destination's metadata (a whole-device
# error under a mirror's chain destination) makes its view read-only at
# the next commit (dm_chain_metadata_failed(): the mode only gets worse),
# so such a job cannot be resumed; that is not a transient device fault
# and is not a cell here (tests/guest/jobs_faults.sh fails a whole
# destination).
set -uo pipefail
[ "${FM_TRACE:-0}" = 1 ] && { PS4='+$EPOCHREALTIME '; set -x; }
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup od cp timeout blkdiscard
CA=$CHAIN_ROOT/userspace/chainadm
IOT=$CHAIN_ROOT/tests/progs/chain-iotest
need_tools "$CA" "$IOT"
chain_load_module || skip_all "cannot load dm-chain"
hold_load_module || die "cannot load dm-hold (make modules-all)"
modprobe loop

T=4		# tries per sync: 1 + JOB_RETRIES
R=3		# JOB_RETRIES: failed bios a transient fault gives
B=16		# syncs in one batch: JOB_BATCH_SECTORS / 64 KiB

CL=65536
CLS=$((CL / 512))
if [ "${STRESS:-0}" = 1 ]; then
	MIB=${FM_MIB:-32}
	ROUNDS=${FM_ROUNDS:-4}
else
	MIB=${FM_MIB:-8}
	ROUNDS=${FM_ROUNDS:-1}
fi
SEED=${FM_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
NC=$((MIB * 16))
M=$((NC / 128))
VSIZE=$((MIB << 20))
SL=$((VSIZE + (1 << 20)))	# a slice: the layer, its header and table
SLS=$((SL / 512))
TBL=$(( (8 * NC + 4095) / 4096 * 4096 ))
MAPOFF=$((8192 + TBL))	# the table map: one block, one bit per table block
DATA_SECT=$(( (MAPOFF + 4096 + CL - 1) / CL * CL / 512 ))
DEV=fm
TYPES="stream commit active full shallow raw"

tap_begin
kmsg_mark
log "STRESS=${STRESS:-0}: $ROUNDS round(s), $MIB MiB, seed $SEED (FM_SEED replays)"

W=$(mktemp -d /tmp/jobs-fault-matrix.XXXXXX)
on_exit rm -rf "$W"
cd "$W" || die "no scratch"
mkfifo nap && exec {NAP}<>nap
nap() { read -r -t "$1" -u "$NAP"; }

truncate -s $((5 * SL)) disk
loop_setup LOOP disk
# 6.12's loop drops WRITE_ZEROES after the first one its file refuses
# (tmpfs has no FALLOC_FL_ZERO_RANGE; chainadm format zeroes a device's
# table with BLKZEROOUT), but a dm device stacked before keeps
# advertising it, and dm-kcopyd's zeroing of a raw destination then fails
# with EOPNOTSUPP.  One zero-out first settles the loop's limits.
blkdiscard -z -o 0 -l $CL "$LOOP" || die "cannot zero-out $LOOP"
SLICES=(base l1 l2 top dest)
on_exit dmsetup remove --retry fm-base fm-l1 fm-l2 fm-top fm-dest
for i in 0 1 2 3 4; do
	dmsetup create "fm-${SLICES[i]}" --table "0 $SLS hold $LOOP $((i * SLS))" ||
		die "cannot create fm-${SLICES[i]}"
done
on_exit dm_remove $DEV
BASE=/dev/mapper/fm-base L1=/dev/mapper/fm-l1 L2=/dev/mapper/fm-l2
TOP=/dev/mapper/fm-top DEST=/dev/mapper/fm-dest

# iot PHASE OP... : chain-iotest on the device and the model, fresh data.
IOSEED=$SEED
iot() {
	local phase=$1 rc
	shift
	IOSEED=$((IOSEED + 1))
	"$IOT" --dev /dev/mapper/$DEV --model model --size $VSIZE \
		--seed $IOSEED "$@" >iot.out 2>&1
	rc=$?
	[ $rc = 0 ] || sed "s|^|# $phase: |" iot.out
	return $rc
}

# ---- the chain, built once

c() { echo $(( $1 * M )); }	# only outside the cells: a subshell
dd if=/dev/urandom of=$BASE bs=1M count=$MIB oflag=direct status=none ||
	die "cannot write the base"
"$CA" format -q -s $VSIZE -b $BASE -F raw $L1 &&
"$CA" create --layers --raw-base $DEV $BASE $L1 >/dev/null ||
	die "cannot create the chain"
p=()
for i in 0 1 2 3 4 5 6 7; do
	p+=(--op w:$(( ($(c 40) + i * M) * CL + (i + 1) * 4096 )):$(( (i % 3 + 1) * 8192 )))
done
"$IOT" --dev /dev/mapper/$DEV --model model --size $VSIZE --seed 1 \
	--init-model-from /dev/mapper/$DEV \
	--op w:$(( $(c 8) * CL )):$(( $(c 32) * CL )) "${p[@]}" >/dev/null ||
	die "cannot write l1"
"$CA" snapshot $DEV $L2 >/dev/null || die "cannot snapshot onto l2"
p=()
for i in 0 1 2 3 4 5 6 7; do
	p+=(--op w:$(( ($(c 56) + i * M) * CL + (7 - i) * 4096 )):$(( (i % 4 + 1) * 4096 )))
done
"$IOT" --dev /dev/mapper/$DEV --model model --size $VSIZE --seed 2 \
	--op w:$(( $(c 32) * CL )):$(( $(c 24) * CL )) "${p[@]}" \
	--op d:$(( $(c 100) * CL )):$(( 2 * M * CL )) >/dev/null ||
	die "cannot write l2"
"$CA" snapshot $DEV $TOP >/dev/null || die "cannot snapshot onto top"
p=()
for i in 0 1 2 3; do
	p+=(--op w:$(( ($(c 56) + i * M) * CL + 32768 )):8192)
done
"$IOT" --dev /dev/mapper/$DEV --model model --size $VSIZE --seed 3 \
	--op w:$(( $(c 64) * CL )):$(( $(c 8) * CL )) "${p[@]}" \
	--op d:$(( $(c 20) * CL )):$(( 2 * M * CL )) >/dev/null ||
	die "cannot write top"
"$IOT" --dev /dev/mapper/$DEV --model model --size $VSIZE --verify-only >/dev/null ||
	die "the chain does not read as written"
"$CA" remove $DEV >/dev/null || die "cannot remove the chain"
mkdir saved && cp --sparse=always disk model model.state saved/ ||
	die "cannot save the chain"

# The layers' cluster tables, from the saved image: TAB_<layer>[v] is
# the entry's type (0 ABSENT, 1 ZERO, 2 MAPPED) * 2^48 + host cluster.
# shellcheck disable=SC2034	# tab: a nameref to the caller's array
# A table block the map does not mark is ABSENT whatever it holds.
read_table() {
	local -n tab=$1
	local w e i=0 m=() b
	tab=()
	for b in $(od -A n -v -t u1 -j $(($2 * SL + MAPOFF)) -N $(( (TBL / 4096 + 7) / 8 )) saved/disk); do
		m+=("$b")
	done
	for w in $(od -A n -v -t x8 -j $(($2 * SL + 8192)) -N $((8 * NC)) saved/disk); do
		e=$((16#$w))
		b=$((i / 512))
		(( (m[b / 8] >> (b % 8)) & 1 )) || e=0
		tab[i++]=$(( ((e >> 62) & 3) << 48 | (e & 0xffffffffffff) ))
	done
	[ $i = $NC ]
}
read_table TAB_L1 1 && read_table TAB_L2 2 && read_table TAB_TOP 3 ||
	die "cannot read the layers' tables"
HOSTMASK=$(( (1 << 48) - 1 ))
# The ZERO clusters the jobs must carry as ZERO (a discard over data
# below; not a write-zeroes, which the loop may not pass down, so the
# block layer would write zero pages).
[ $(( TAB_L2[100 * M] >> 48 )) = 1 ] && [ $(( TAB_TOP[20 * M] >> 48 )) = 1 ] ||
	die "l2's cluster $((100 * M)) or top's $((20 * M)) is not ZERO"
# The stream's copies (clusters l1 or l2 hold with data, top does not
# hold), in walk order, and where top allocates next.
STREAM_COPIES=() TOP_END=0
for ((v = 0; v < NC; v++)); do
	e=${TAB_TOP[v]}
	if [ "$e" != 0 ]; then
		[ $((e >> 48)) = 2 ] && [ $(( (e & HOSTMASK) + 1 )) -gt $TOP_END ] &&
			TOP_END=$(( (e & HOSTMASK) + 1 ))
		continue
	fi
	e=${TAB_L2[v]}
	[ "$e" = 0 ] && e=${TAB_L1[v]}
	[ $((e >> 48)) = 2 ] && STREAM_COPIES+=("$v")
done
log "built in $SECONDS s; stream copies ${#STREAM_COPIES[@]} clusters; top allocates from host cluster $TOP_END"

# ---- per-round choices

# X: a cluster only l1 holds, whole (source fault, commit's base fault);
# XS: one top holds whole (shallow source fault); TC: a base-only cluster
# the guest writes to trigger a copy at ready.  The guest's own clusters
# (ops_for) keep away from all three.
pick_round() {
	if [ "${STRESS:-0}" = 1 ]; then
		X=$(( 22 * M + RANDOM % (10 * M) ))
		XS=$(( 64 * M + RANDOM % (8 * M) ))
		TC=$(( 102 * M + RANDOM % (13 * M) ))
		SHIFT=$(( RANDOM % (4 * M) ))
	else
		X=$((24 * M)) XS=$((66 * M)) TC=$((110 * M)) SHIFT=0
	fi
	[ $(( TAB_L1[X] >> 48 )) = 2 ] && [ $(( TAB_TOP[XS] >> 48 )) = 2 ] ||
		die "cluster choice: $X is not l1's or $XS not top's"
	HOST_X=$(( TAB_L1[X] & HOSTMASK ))
	HOST_XS=$(( TAB_TOP[XS] & HOSTMASK ))
	log "round: X=$X (l1 host $HOST_X) XS=$XS (top host $HOST_XS) T=$TC shift $SHIFT"
}

# ops_for FLAVOUR PHASE : OPS=(--op ...), the guest's writes of a phase.
#   any      whole and partial writes, copy-ups from every layer
#   inplace  only clusters top holds (a fault under top's new clusters)
#   nobase   no copy-up from the base (the whole base fails)
ops_for() {
	local f=$1 k=$(( $2 + SHIFT ))
	OPS=()
	case $f in
	inplace)
		OPS=(--op w:$(( (64 * M + k % (8 * M)) * CL )):"$CL"
		     --op w:$(( (56 * M + (k % 4) * M) * CL + (k % 8) * 4096 )):8192)
		return ;;
	esac
	OPS=(--op w:$(( (2 * M + k % (5 * M)) * CL )):"$CL"
	     --op w:$(( (48 * M + k % (8 * M)) * CL + (k % 8) * 8192 )):8192
	     --op w:$(( (76 * M + 2 * (k % (12 * M))) * CL )):$((2 * CL))
	     --op w:$(( (10 * M + k % (8 * M)) * CL + 16384 )):4096)
	[ "$f" = nobase ] ||
		OPS+=(--op w:$(( (116 * M + k % (12 * M)) * CL + 4096 )):12288)
}

# ---- faults

FAULTED=
# fault_table NAME START LEN : sectors START..START+LEN of fm-NAME fail
# (an "error" segment), the rest maps as before.  A resume with a table
# loaded suspends first: with --noflush, as a suspend --noflush would.
fault_table() {
	local n=$1 s=$2 l=$3 off
	off=$(( $(slice_of "$n") * SLS ))
	{
		[ "$s" -gt 0 ] && echo "0 $s linear $LOOP $off"
		echo "$s $l error"
		[ $((s + l)) -lt $SLS ] &&
			echo "$((s + l)) $((SLS - s - l)) linear $LOOP $((off + s + l))"
	} > fault.table
	dmsetup load "fm-$n" fault.table &&
	dmsetup resume --noflush "fm-$n" && FAULTED=$n
}

heal() {
	local n=$1
	dmsetup load "fm-$n" --table "0 $SLS hold $LOOP $(( $(slice_of "$n") * SLS ))" &&
	dmsetup resume --noflush "fm-$n" && FAULTED=
}

slice_of() {
	local i
	for i in 0 1 2 3 4; do
		[ "${SLICES[i]}" = "$1" ] && { echo $i; return; }
	done
}

# fail_rule NAME START LEN OP : the next R bios of OP touching the range fail.
fail_rule() {
	dmsetup message "fm-$1" 0 fail "$2" "$3" "$4" $R && FAILING=$1
}
FAILING=

# hold_failed NAME : bios failed by the rule since the table was loaded.
hold_failed() {
	local f
	read -r -a f < <(dmsetup status "fm-$1")
	echo "${f[9]}"
}

# ---- the job

# job_params TYPE : BW, the bandwidth limit (MiB/s) that has the walk
# reach X after a second or so (several on the long form's bigger disk,
# so that a fault put in while it runs still comes before X), and POS,
# about how many clusters it copies before X.
job_params() {
	local k=$(( M > 1 ? 2 : 4 ))
	case $1 in
	stream|commit) BW=1 POS=$((X - 8 * M)) ;;
	active)  BW=$((k / 2)) POS=$((X - 8 * M)) ;;
	full|raw) BW=$k POS=$X ;;
	shallow) BW=1 POS=$((XS - 60 * M)) ;;
	esac
}

# job_start TYPE : start the job (job_params first).
job_start() {
	case $1 in
	stream)  "$CA" pull --base "${DEV}[3]" --bandwidth $BW $DEV ;;
	commit)  "$CA" commit --top "${DEV}[1]" --base "${DEV}[3]" --bandwidth $BW $DEV ;;
	active)  "$CA" commit --active --bandwidth $BW $DEV ;;
	full)    "$CA" copy --bandwidth $BW $DEV $DEST ;;
	shallow) "$CA" copy --shallow --bandwidth $BW $DEV $DEST ;;
	raw)     "$CA" copy --raw --bandwidth $BW $DEV $DEST ;;
	esac >/dev/null
}

# job_wait : chainadm job --wait --json; JRC its exit code, JPHASE and
# JERRORS from its JSON (the job as it arrived, before chainadm ended it).
job_wait() {
	local out
	out=$(timeout 180 "$CA" job $DEV --wait --json 2>&1)
	JRC=$?
	JPHASE='?' JERRORS='?'
	[[ $out =~ \"phase\":\ *\"([a-z-]+)\" ]] && JPHASE=${BASH_REMATCH[1]}
	[[ $out =~ \"errors\":\ *([0-9]+) ]] && JERRORS=${BASH_REMATCH[1]}
	[ $JRC = 0 ] || [ $JRC = 4 ] || printf '%s\n' "$out" | sed 's/^/# job_wait: /'
}

# status_job : F=(words of the status line); phase F[10], errors F[14].
status_job() { read -r -a F < <(dmsetup status $DEV); }

# wait_phase SECS PHASE : poll the status (a stream or commit would be
# applied by chainadm's --wait before its count could be read).
wait_phase() {
	local i
	for ((i = 0; i < $1 * 4; i++)); do
		status_job
		[ "${F[10]:-}" = "$2" ] && return 0
		case ${F[10]:-} in failed|cancelled|-)
			log "job is ${F[10]:-gone}, not $2"; return 1 ;;
		esac
		nap 0.25
	done
	log "job still ${F[10]:-?} after $1 s, not $2"
	return 1
}

# finish TYPE : complete (stream, commit) or pivot.
finish() {
	case $1 in
	stream|commit) timeout 180 "$CA" job $DEV --wait >/dev/null ;;
	*) timeout 180 "$CA" job $DEV --pivot >/dev/null ;;
	esac
}

# reassemble TYPE : a copy's destination, assembled alone (a shallow one
# on the layers below it).
reassemble() {
	case $1 in
	full)	"$CA" create --layers $DEV $DEST ;;
	shallow) "$CA" create --layers --raw-base $DEV $BASE $L1 $L2 $DEST ;;
	raw)	"$CA" create --layers --raw-base $DEV $DEST ;;
	esac >/dev/null
}

in_range() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

verify() { iot "$1" --verify-only; }

# fresh : the saved chain and model, any fault left behind healed.
fresh() {
	[ -e /dev/mapper/$DEV ] && dmsetup remove --retry $DEV
	[ -n "$FAULTED" ] && heal "$FAULTED"
	[ -n "$FAILING" ] && dmsetup message "fm-$FAILING" 0 heal
	FAILING=
	cp --sparse=always saved/disk saved/model saved/model.state . &&
	"$CA" create --layers --raw-base $DEV $BASE $L1 $L2 $TOP >/dev/null
}

# ---- one cell

# cell TYPE WHERE DURATION
cell() {
	local type=$1 where=$2 dur=$3 L="$1/$2/$3"
	local fdev fstart flen fop lo hi flav=any ready=0 e1 rc t0 delay
	local rd_lo=$((40 * M)) rd_n=$((NC - 40 * M))

	if ! fresh; then
		tap_fail "$L: fresh chain" "cannot restore the chain"
		return
	fi
	t0=$SECONDS
	# What fails, and the bounds (see the top of the file).
	case $where/$type in
	src/shallow)
		fdev=top fstart=$((HOST_XS * CLS)) flen=$CLS fop=read
		rd_lo=0 rd_n=$((64 * M)) ;;
	src/*)	fdev=l1 fstart=$((HOST_X * CLS)) flen=$CLS fop=read ;;
	dest/stream)
		fdev=top fop=write flav=inplace
		if [ $dur = lasting ]; then
			fstart=$(( (TOP_END + ${#STREAM_COPIES[@]} - 1) * CLS ))
			flen=$((SLS - fstart))
		else
			fstart=$(( (TOP_END + ${#STREAM_COPIES[@]} / 2) * CLS )) flen=1
		fi ;;
	dest/commit) fdev=base fstart=$((X * CLS)) flen=$CLS fop=write ;;
	dest/active) fdev=base fop=write ready=1
		if [ $dur = lasting ]; then
			fstart=0 flen=$SLS flav=nobase rd_lo=$((8 * M)) rd_n=$((48 * M))
		else
			fstart=$((TC * CLS)) flen=$CLS
		fi ;;
	dest/raw) fdev=dest fstart=0 flen=$SLS fop=write ready=1 ;;
	dest/*)	fdev=dest fstart=$DATA_SECT flen=$((SLS - DATA_SECT)) fop=write ready=1 ;;
	esac
	if [ $ready = 1 ]; then
		[ $dur = lasting ] && lo=$T hi=$T || lo=$R hi=$R
	elif [ $type/$where = stream/dest ]; then
		[ $dur = lasting ] && lo=$T hi=$((T * B)) || lo=$R hi=$((R * B))
	else
		[ $dur = lasting ] && lo=$T hi=$((T + B - 1)) || lo=$R hi=$((R + B - 1))
	fi
	[ $dur = transient ] && [ $flen = $CLS ] && [ $ready = 0 ] && flen=1

	# Before the job.
	ops_for $flav 0
	iot "$L before" "${OPS[@]}" || { tap_fail "$L: guest writes before the job"; return; }

	# The fault, unless it waits for ready or (long form) a random
	# moment while the walk has not reached X yet: up to the time it
	# takes to get there, less 4 s for putting the fault in (two dmsetup
	# runs, a second or more each on a loaded TCG guest).
	job_params $type
	delay=0
	if [ "${STRESS:-0}" = 1 ] && [ $where = src ] && [ $dur = lasting ]; then
		delay=$(( POS * 10 * CL / (BW << 20) - 40 ))	# tenths of a second
		[ $delay -gt 0 ] && delay=$(( RANDOM % delay ))
		[ $delay -gt 0 ] || delay=0
	fi
	if [ $ready = 0 ] && [ $delay = 0 ]; then
		if [ $dur = lasting ]; then
			fault_table $fdev $fstart $flen
		else
			fail_rule $fdev $fstart $flen $fop
		fi || { tap_fail "$L: put the fault in"; return; }
	fi
	job_start $type || { tap_fail "$L: start the job"; return; }
	if [ $delay != 0 ]; then
		nap "$((delay / 10)).$((delay % 10))"
		fault_table $fdev $fstart $flen || { tap_fail "$L: put the fault in"; return; }
		log "$L: fault put in $((delay / 10)).$((delay % 10)) s after the start"
	fi
	ops_for $flav 1
	iot "$L running" "${OPS[@]}"
	rc=$?

	if [ $ready = 1 ]; then
		job_wait
		if [ "$JPHASE" != ready ]; then
			tap_fail "$L: the job gets ready" "phase $JPHASE, chainadm exit $JRC"
			return
		fi
		if [ $dur = lasting ]; then
			fault_table $fdev $fstart $flen
		else
			fail_rule $fdev $fstart $flen $fop
		fi || { tap_fail "$L: put the fault in"; return; }
		# The one write that makes the job copy into the faulty device.
		iot "$L trigger" --op w:$((TC * CL)):$CL || rc=1
	fi

	if [ $dur = transient ]; then
		tap_check "$L: guest I/O goes on while the fault is in" test $rc = 0
		case $type in
		stream|commit)
			wait_phase 120 completed
			tap_check "$L: the job completes without failing" test "${F[10]:-}" = completed
			e1=${F[14]:-?} ;;
		*)
			job_wait
			tap_check "$L: the job gets ready without failing" test "$JPHASE" = ready
			e1=$JERRORS ;;
		esac
		tap_check "$L: the fault healed by itself: $R bios failed" \
			test "$(hold_failed $fdev)" = $R && FAILING=
		tap_check "$L: errors $e1 in [$lo, $hi]" in_range "$e1" $lo $hi
		ops_for any 3
		iot "$L after" "${OPS[@]}"
		tap_check "$L: guest writes after the fault" test $? = 0
	else
		tap_check "$L: guest I/O goes on while the fault is in" test $rc = 0
		job_wait
		tap_check "$L: the job fails (chainadm woken by the event)" \
			test $JRC = 4 -a "$JPHASE" = failed
		e1=$JERRORS
		tap_check "$L: errors $e1 in [$lo, $hi]" in_range "$e1" $lo $hi
		ops_for $flav 2
		iot "$L failed" "${OPS[@]}" --op r:$((rd_lo * CL)):$((rd_n * CL))
		tap_check "$L: guest writes and reads go on while the job is failed" test $? = 0
		heal $fdev || { tap_fail "$L: heal"; return; }
		"$CA" job $DEV --resume >/dev/null ||
			{ tap_fail "$L: chainadm job --resume"; return; }
		ops_for any 3
		iot "$L resumed" "${OPS[@]}"
		rc=$?
		case $type in
		stream|commit)
			status_job
			tap_check "$L: errors unchanged after the failure (${F[14]:-?})" \
				test "${F[14]:-}" = "$e1" ;;
		*)
			job_wait
			tap_check "$L: resumed, the job gets ready again" test "$JPHASE" = ready
			tap_check "$L: errors unchanged after the failure ($JERRORS)" \
				test "$JERRORS" = "$e1"
			ops_for any 4
			iot "$L ready" "${OPS[@]}" || rc=1 ;;
		esac
		tap_check "$L: guest writes after the resume" test $rc = 0
	fi

	if ! finish $type; then
		status_job
		tap_fail "$L: finish the job (completion or pivot)" "status: ${F[*]:9}"
		return
	fi
	tap_check "$L: the device equals the model after the job" verify "$L end"
	# An active commit leaves the raw base alone: nothing more to see.
	[ $type = active ] && { log "$L: $((SECONDS - t0)) s"; return; }
	"$CA" remove $DEV >/dev/null || { tap_fail "$L: remove the device"; return; }
	case $type in
	stream|commit) tap_check "$L: chainadm check top" "$CA" check -q $TOP ;;
	full|shallow) tap_check "$L: chainadm check the destination" "$CA" check -q $DEST ;;
	esac
	case $type in full|shallow|raw)
		if reassemble $type; then
			tap_check "$L: the destination assembled alone equals the model" \
				verify "$L dest alone"
		else
			tap_fail "$L: assemble the destination alone"
		fi ;;
	esac
	log "$L: $((SECONDS - t0)) s"
}

# ---- the matrix

for ((round = 0; round < ROUNDS; round++)); do
	pick_round
	for type in $TYPES; do
		for where in src dest; do
			for dur in transient lasting; do
				if [ -n "${FM_CELLS:-}" ] &&
				   [[ " $FM_CELLS " != *" $type/$where/$dur "* ]]; then
					continue
				fi
				cell $type $where $dur
			done
		done
	done
done
tap_check "kernel log clean" kmsg_check
tap_end
