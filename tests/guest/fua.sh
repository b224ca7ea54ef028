#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# FUA: O_DSYNC writes that reach the target as FUA writes, a power cut
# right after each acknowledgement, and every acknowledged write found.
#
# Loop and virtio-blk devices advertise no FUA, so the block layer would
# turn a FUA write into a write and a flush before dm-chain's active layer
# ever saw it.  Here the active layer sits on a null_blk device with a
# volatile write cache and FUA (memory_backed, cache_size, fua), seen
# through dm-log-writes, which passes FUA down and logs it:
#
#   /dev/mapper/$P-c    chain 2 raw <base loop> /dev/mapper/$P-lw
#   /dev/mapper/$P-lw   log-writes /dev/nullb<fua> <log loop>
#
# base.img is a raw 4 MiB disk of id-0 stamps; the active layer (64 KiB
# clusters) is formatted in top.img, copied onto the null_blk device and
# into replay.img (the state the log starts from).
#
# Workload: `chain-stamp write --dsync` (O_DSYNC|O_DIRECT, submitted
# through AIO one at a time, so each write goes down as one REQ_FUA bio and
# nothing flushes after it; a synchronous O_DSYNC pwrite would be followed
# by a full flush), WRITES writes inside the first 1 MiB, so that about half
# of them land in clusters the active layer already owns (remapped in place:
# FUA passes through) and half need a new cluster (the target must hold the
# completion until a commit made the mapping durable).  After each ack
# the writer puts a mark "ack-ID" into the log.  Then a second writer is
# killed with SIGKILL in the middle of its run and a mark "killed" is put
# right after.
#
# dm-log-writes logs a write once it is durable: a FUA write when it
# completes, any other write only at the next flush.  Replaying the log up
# to a mark is therefore a power cut at that moment that lost every write
# not flushed and not FUA.  Checks:
#   - the chain device advertises FUA (queue/fua is 1);
#   - every write into an owned cluster shows in its log segment (between
#     the previous mark and its ack mark) as a FUA entry in the active
#     layer's data area, with no FLUSH in the segment: FUA alone made it
#     durable;
#   - every write needing a new cluster shows a header write (the commit)
#     before its ack mark;
#   - at every ack mark, `chainadm check` of the replayed layer is clean
#     and a read-only chain over base + replay passes `chain-stamp check
#     --acked-dsync` (every acked O_DSYNC write is there, nothing
#     misdirected), for both kinds of write;
#   - negative control: cut the log just before the table write of the
#     first write that needed a new cluster (its data was durable, its
#     mapping not): the same check must report that write as lost, so the
#     passing checks above depend on the target holding the ack;
#   - at the "killed" mark every write the killed writer had acked is
#     there;
#   - the whole log replayed equals the null_blk device byte for byte.
#
# Environment: FUA_WRITES (default 30), FUA_KEEP=DIR (debugging).  Cost: one replay step, one
# chainadm check and one 4 MiB read per write.
. "$(dirname "$0")/../lib.sh"

require_guest
require_root
require_cmd dmsetup losetup blockdev dd awk cmp cp truncate python3

PROGS=$CHAIN_ROOT/tests/progs
STAMP=$PROGS/chain-stamp
LWREPLAY=$PROGS/lw-replay
PATCH=(python3 "$CHAIN_ROOT/tests/layer-patch.py")

SIZE=$((4 << 20))
VSECT=$((SIZE / 512))
CS=65536
WSIZE=$((1 << 20))
WRITES=${FUA_WRITES:-30}
NB_MB=64
P=fua$$
LW=$P-lw
C=$P-c
CHK=$P-chk
DEV=/dev/mapper/$C
NB_NAME=dmchain_fua$$

modprobe dm-log-writes 2>/dev/null
dmsetup targets 2>/dev/null | grep -qw log-writes ||
	skip_all "dm-log-writes target not available"
modprobe null_blk nr_devices=0 2>/dev/null ||
	skip_all "null_blk not available"

tap_plan 12
kmsg_mark

need_tools "$STAMP" "$LWREPLAY" "$CHAINADM"
tap_load_module

W=$(mktemp -d /tmp/fua.XXXXXX) || die "mktemp failed"
on_exit "rm -rf $W"
# Debugging: FUA_KEEP=DIR (e.g. a tools/guest-run --outdir) receives the
# log listing, journals and outputs, not the images.
[ -n "${FUA_KEEP:-}" ] &&
	on_exit "mkdir -p $FUA_KEEP && find $W -type f ! -name '*.img' -exec cp {} $FUA_KEEP/ ';'"
on_exit "rmmod null_blk"
on_exit dm_remove "$LW"
on_exit dm_remove "$C"
on_exit dm_remove "$CHK"
J=$W/journal

brief() { head -n "${2:-4}" "$1" | tr '\n' ' ' | sed 's/ *$//'; }

attach() {
	local dev
	dev=$(losetup -f --show "$2") || return 1
	on_exit "losetup -d $dev"
	printf -v "$1" '%s' "$dev"
}

# nullb_create: a memory-backed null_blk device with a volatile write cache
# and FUA, through configfs; sets NB.
nullb_create() {
	local cfs=/sys/kernel/config d attr
	[ -d $cfs/nullb ] || mount -t configfs none $cfs 2>/dev/null
	[ -d $cfs/nullb ] || { echo "no nullb in configfs"; return 1; }
	d=$cfs/nullb/$NB_NAME
	mkdir "$d" || return 1
	on_exit "rmdir $d"
	for attr in size=$NB_MB blocksize=512 memory_backed=1 cache_size=16 \
		    fua=1 power=1; do
		# fua is a newer attribute; without it cache_size implies FUA.
		[ -e "$d/${attr%%=*}" ] || { [ "${attr%%=*}" = fua ] && continue; }
		echo "${attr#*=}" > "$d/${attr%%=*}" ||
			{ echo "cannot set ${attr%%=*}"; return 1; }
	done
	on_exit "echo 0 > $d/power"
	# The disk takes the configfs name (6.x), or nullb<index> (older).
	NB=/dev/$NB_NAME
	[ -b "$NB" ] || NB=/dev/nullb$(cat "$d/index")
	[ -b "$NB" ] || { echo "no block device for $d"; return 1; }
}

dm_minor() { dmsetup info -c --noheadings -o minor "$1" | tr -d ' '; }
queue_attr() { cat "/sys/block/dm-$(dm_minor "$1")/queue/$2"; }

# Journal up to and including the ack of write ID.
journal_upto_ack() {
	local f=$W/journal.$1
	[ -f "$f" ] || awk -v a="ack $1" '{ print } $0 == a { exit }' "$J" > "$f"
	echo "$f"
}

# stamp_check_state IMG LOOP JOURNAL : the replayed layer IMG must pass
# chainadm check, and a read-only chain over base + LOOP (IMG attached)
# chain-stamp check --acked-dsync against JOURNAL.
stamp_check_state() {
	local img=$1 dev=$2 journal=$3 r
	"$CHAINADM" check -q "$img" || { echo "chainadm check failed"; return 2; }
	dmsetup create "$CHK" --readonly \
		--table "0 $VSECT chain 2 raw $BLOOP $dev" ||
		{ echo "cannot create the check device"; return 2; }
	"$STAMP" check --dev "/dev/mapper/$CHK" --journal "$journal" \
		--size $SIZE --initial stamped --acked-dsync
	r=$?
	dmsetup remove "$CHK" || { echo "cannot remove $CHK"; r=2; }
	return $r
}

# -------- stack
stack() {
	nullb_create || return 1
	truncate -s $SIZE "$W/base.img" && attach BLOOP "$W/base.img" &&
		"$STAMP" fill --dev "$BLOOP" --size $SIZE >/dev/null || return 1
	"$CHAINADM" format -q --cluster-size $CS --backing "$W/base.img" \
		--backing-type raw "$W/top.img" || return 1
	dd if="$W/top.img" of="$NB" bs=1M oflag=direct conv=fsync status=none &&
		cp --sparse=always "$W/top.img" "$W/replay.img" &&
		cp --sparse=always "$W/top.img" "$W/neg.img" &&
		truncate -s $((NB_MB << 20)) "$W/replay.img" "$W/neg.img" &&
		truncate -s 256M "$W/log.img" &&
		attach LLOOP "$W/log.img" && attach RLOOP "$W/replay.img" &&
		attach NLOOP "$W/neg.img" || return 1
	dmsetup create "$LW" --table "0 $(blockdev --getsz "$NB") log-writes $NB $LLOOP" &&
		dmsetup create "$C" --table "0 $VSECT chain 2 raw $BLOOP /dev/mapper/$LW"
}
if stack >"$W/stack.out" 2>&1; then
	tap_ok "stack: chain over dm-log-writes over null_blk ($NB, volatile cache)"
else
	tap_fail "stack" "$(brief "$W/stack.out")"
	tap_done
fi
NBQ=/sys/block/${NB#/dev/}/queue
fua_c=$(queue_attr "$C" fua)
log "queue/fua: $NB $(cat $NBQ/fua), $LW $(queue_attr "$LW" fua), $C $fua_c;" \
    "write_cache: $NB $(cat $NBQ/write_cache), $C $(queue_attr "$C" write_cache)"
if [ "$fua_c" = 1 ] && [ "$(cat $NBQ/fua)" = 1 ]; then
	tap_ok "the chain device and null_blk advertise FUA"
else
	tap_fail "the chain device and null_blk advertise FUA" \
		"queue/fua: chain $fua_c, null_blk $(cat $NBQ/fua)"
fi
DOFS=$("${PATCH[@]}" "$W/top.img" --get data_offset) || DOFS=$SIZE

# -------- workload
workload() {
	dmsetup message "$LW" 0 mark begin &&
	"$STAMP" write --dev "$DEV" --journal "$J" --size $WSIZE --ops "$WRITES" \
		--seed 1 --cluster $CS --max-len 65536 --dsync \
		--ack-cmd "dmsetup message $LW 0 mark ack-%d" || return 1
	cp "$J" "$W/journal.run1"
	# A writer killed in the middle of its run.
	"$STAMP" write --dev "$DEV" --journal "$J" --size $SIZE --ops 100000 \
		--seed 2 --cluster $CS --max-len 65536 --dsync &
	local pid=$!
	sleep 3
	kill -KILL $pid
	wait $pid
	[ $? -eq 137 ] || { echo "the second writer was not killed"; return 1; }
	dmsetup message "$LW" 0 mark killed
}
t0=$SECONDS
if ! workload >"$W/workload.out" 2>&1; then
	tap_fail "workload" "$(brief "$W/workload.out" 6)"
	tap_done
fi
log "workload took $((SECONDS - t0)) s"
dmsetup remove "$C" && dmsetup remove "$LW" || die "cannot remove $C/$LW"

# Classify run 1's writes: "ID new|owned" (owned: every cluster it touches
# was written by an earlier write, so the active layer maps it already).
awk -v spc=$((CS / 512)) '
	$1 == "run" && $2 == 2 { exit }
	$1 == "start" {
		own = 1
		for (c = int($3 / spc); c <= int(($3 + $4 - 1) / spc); c++) {
			if (!(c in t)) own = 0
			t[c] = 1
		}
		print $2, own ? "owned" : "new"
	}' "$J" > "$W/kinds"
n_new=$(grep -c ' new$' "$W/kinds")
n_owned=$(grep -c ' owned$' "$W/kinds")
n_acked=$(awk '$1 == "run" && $2 == 2 { exit } $1 == "ack"' "$J" | wc -l)
n_killed=$(awk '$1 == "run" && $2 == 2 { on = 1 } on && $1 == "ack"' "$J" | wc -l)
if [ "$n_acked" -eq "$WRITES" ] && [ "$n_new" -ge 5 ] && [ "$n_owned" -ge 5 ] &&
   [ "$n_killed" -ge 1 ]; then
	tap_ok "workload: $WRITES O_DSYNC writes acked ($n_new new clusters, $n_owned owned), $n_killed more before SIGKILL"
else
	tap_fail "workload" "$n_acked acked, $n_new new, $n_owned owned, $n_killed before the kill"
fi

# -------- the log
"$LWREPLAY" --log "$LLOOP" --list > "$W/list" 2>"$W/list.err" ||
	die "lw-replay --list: $(brief "$W/list.err")"
# Per run-1 write: "ID kind fua_data flush header ack_idx table_idx",
# from the entries between the previous mark and mark ack-ID.
awk -v dofs="$DOFS" -v tofs=8192 '
	/^# sectorsize/ { ss = $3; next }
	/^#/ { next }
	$2 ~ /MARK/ {
		if ($5 ~ /^ack-/) {
			id = substr($5, 5)
			print id, fua + 0, fl + 0, hdr + 0, $1, (tbl == "" ? -1 : tbl)
		}
		fua = fl = hdr = 0; tbl = ""
		next
	}
	{
		b = $3 * ss
		if ($2 ~ /FLUSH/) fl++
		if ($4 > 0 && b >= dofs && $2 ~ /FUA/) fua++
		if ($4 > 0 && b < tofs) hdr++
		if ($4 > 0 && b >= tofs && b < dofs && tbl == "") tbl = $1
	}' "$W/list" > "$W/segments"
join <(sort "$W/kinds") <(sort "$W/segments") | sort -n > "$W/table"
nfua=$(awk -v dofs="$DOFS" '/^# sectorsize/ { ss = $3 } !/^#/ && $2 ~ /FUA/ && $4 > 0 && $3 * ss >= dofs' "$W/list" | wc -l)
log "log: $(awk '/^#/ { print $NF }' "$W/list") entries, $nfua FUA data entries in the active layer's data area"

bad=$(awk '$2 == "owned" && !($3 >= 1 && $4 == 0)' "$W/table")
if [ "$(awk '$2 == "owned"' "$W/table" | wc -l)" -eq "$n_owned" ] && [ -z "$bad" ]; then
	tap_ok "FUA reached the target: each of $n_owned writes to owned clusters is a FUA entry, no flush"
else
	tap_fail "FUA reached the target: writes to owned clusters are FUA entries, no flush" \
		"segments (id kind fua flush header): $(echo $bad | head -c 300)"
fi
bad=$(awk '$2 == "new" && !($5 >= 1 && $7 >= 0)' "$W/table")
if [ "$(awk '$2 == "new"' "$W/table" | wc -l)" -eq "$n_new" ] && [ -z "$bad" ]; then
	tap_ok "each of $n_new writes to new clusters was acked after a commit (table and header writes)"
else
	tap_fail "writes to new clusters were acked after a commit" \
		"segments (id kind fua flush header ack table): $(echo $bad | head -c 300)"
fi

# -------- a power cut right after every ack
start=0
fails_new=0 fails_owned=0 first_new='' first_owned=''
t0=$SECONDS
while read -r -u 3 id kind fua fl hdr ack tbl; do
	if ! "$LWREPLAY" --log "$LLOOP" --replay "$RLOOP" --start $start \
		--limit "$ack" >/dev/null 2>"$W/replay.err"; then
		die "replay to entry $ack: $(brief "$W/replay.err")"
	fi
	start=$((ack + 1))
	if ! stamp_check_state "$W/replay.img" "$RLOOP" "$(journal_upto_ack "$id")" >"$W/st.out" 2>&1; then
		if [ "$kind" = new ]; then
			fails_new=$((fails_new + 1))
			[ -n "$first_new" ] || first_new="write $id: $(brief "$W/st.out")"
		else
			fails_owned=$((fails_owned + 1))
			[ -n "$first_owned" ] || first_owned="write $id: $(brief "$W/st.out")"
		fi
	fi
done 3< "$W/table"
log "checked $WRITES ack points in $((SECONDS - t0)) s"
if [ $fails_owned -eq 0 ]; then
	tap_ok "power cut after each ack: all $n_owned writes to owned clusters found"
else
	tap_fail "power cut after each ack: writes to owned clusters found" \
		"$fails_owned of $n_owned points fail; first: $first_owned"
fi
if [ $fails_new -eq 0 ]; then
	tap_ok "power cut after each ack: all $n_new writes to new clusters found"
else
	tap_fail "power cut after each ack: writes to new clusters found" \
		"$fails_new of $n_new points fail; first: $first_new"
fi

# -------- negative control: before the commit of the first new write
read -r nid _ _ _ _ _ ntbl <<< "$(awk '$2 == "new" && $7 > 0' "$W/table" | head -n 1)"
if [ -z "$nid" ]; then
	tap_fail "negative: a cut before the commit loses the write" "no new write with a table entry"
elif "$LWREPLAY" --log "$LLOOP" --replay "$NLOOP" --limit $((ntbl - 1)) \
	>/dev/null 2>"$W/neg.err" &&
     { stamp_check_state "$W/neg.img" "$NLOOP" "$(journal_upto_ack "$nid")" >"$W/neg.out" 2>&1; [ $? -eq 1 ]; } &&
     grep -q "id $nid was acked with O_DSYNC (lost write)" "$W/neg.out"; then
	tap_ok "negative: a cut before write $nid's table write shows it lost"
	log "$(grep -m1 'lost write' "$W/neg.out")"
else
	tap_fail "negative: a cut before the commit loses the write" \
		"write $nid, cut at entry $((ntbl - 1)): $(brief "$W/neg.err") $(brief "$W/neg.out")"
fi

# -------- the killed writer
if "$LWREPLAY" --log "$LLOOP" --replay "$RLOOP" --start $start \
	--end-mark killed >/dev/null 2>"$W/replay.err" &&
   stamp_check_state "$W/replay.img" "$RLOOP" "$J" >"$W/killed.out" 2>&1; then
	tap_ok "power cut after SIGKILL: all $n_killed acked writes of the killed writer found"
else
	tap_fail "power cut after SIGKILL: acked writes found" \
		"$(brief "$W/replay.err") $(brief "$W/killed.out")"
fi

# -------- the whole log
if "$LWREPLAY" --log "$LLOOP" --replay "$RLOOP" >/dev/null 2>"$W/replay.err" &&
   cmp -s "$W/replay.img" "$NB"; then
	tap_ok "replaying the whole log reproduces the null_blk device"
else
	tap_fail "replaying the whole log reproduces the null_blk device" \
		"$(brief "$W/replay.err") $(cmp "$W/replay.img" "$NB" 2>&1)"
fi

tap_check "kernel log clean" kmsg_check
tap_done
