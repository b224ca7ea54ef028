#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The job engine's batches (Documentation/dm-chain.rst, "How a job
# copies") at the cluster sizes that take its three paths: 4 KiB (a batch
# ends at 64 clusters, 256 KiB), 64 KiB (16 clusters, 1 MiB) and 2 MiB
# (too big for a batch: dm-kcopyd).  The chain base <- sn1 <- sn2 <- cur
# is laid out the way a batch finds hardest:
#
#   - clusters [0, 3/4) are striped over base, sn1 and sn2 (cluster c in
#     layer c mod 3), so no two neighbours in a batch come from one layer
#     and every cluster is a read of its own;
#   - base and cur discard some of their own clusters, so the host
#     clusters a pull or commit allocates are partly holes: the
#     destination is not contiguous and batches must end there;
#   - cur owns the last quarter, which a pull must leave alone.
#
# For each size, on fresh copies of the layers: pull (flatten), commit
# sn2 into base, copy to a chain file and copy to a raw file.  Every case
# compares the device with the reference file (written beside every
# write), then the layers the job wrote alone, re-assembled.
#
# At 64 KiB, pull and commit once more while the guest keeps the device
# busy (fio's direct random reads all over it without a pause, and
# whole-cluster writes, also made in the reference, one after the other):
# the job then copies in rounds with
# rests between them (it yields to the guest) and races the guest's
# copy-ups; it must still end, and the device and the layers must still
# show the reference.
. "$(dirname "$0")/../lib.sh"

jobs_begin pull blkdiscard fio

LAYERS=(base sn1 sn2 cur)

# stride_table FIRST DEV : a dm-linear table that maps clusters FIRST,
# FIRST+3, ... below 3/4 of the disk of DEV one after the other.
stride_table() {
	awk -v f="$1" -v e=$((NCL * 3 / 4)) -v spc=$((CS / 512)) -v dev="$2" 'BEGIN {
		for (c = f; c < e; c += 3)
			printf "%d %d linear %s %d\n", k++ * spc, spc, dev, c * spc
	}'
}

# fill_stride TAG FIRST : stamp those clusters on the device and in the
# model, through a stride_table device over each: one dd for the layer.
fill_stride() {
	local n=$(((NCL * 3 / 4 - $2 + 2) / 3)) ml rc=1
	ml=$(losetup -f --show "$work/model") || return 1
	if stride_table "$2" /dev/mapper/$DEV | dmsetup create ${DEV}_fa &&
	   stride_table "$2" "$ml" | dmsetup create ${DEV}_fb; then
		stamp_range /dev/mapper/${DEV}_fa /dev/mapper/${DEV}_fb "$1" 0 $((n * CS))
		rc=$?
		sync
	fi
	dmsetup remove ${DEV}_fa
	dmsetup remove ${DEV}_fb
	losetup -d "$ml"
	return $rc
}

# discard_ops FIRST STEP COUNT : x ops for COUNT clusters from FIRST.
discard_ops() {
	local i
	for ((i = 0; i < $3; i++)); do
		printf 'x:%d:1 ' $(($1 + i * $2))
	done
}

build() {
	local l
	rm -rf "${work:?}"/* &&
	"$CHAINADM" format -q --size $SIZE --cluster-size $CS "$work/base.img" &&
	truncate -s $SIZE "$work/model" &&
	"$CHAINADM" create $DEV "$work/base.img" >/dev/null &&
	fill_stride base 0 || return 1
	# Holes in base's data area: some of its clusters 0, 6, 12, ...
	# shellcheck disable=SC2046	# a list of ops
	write_ops /dev/mapper/$DEV "$work/model" base $CS \
		$(discard_ops 0 6 $((NCL / 8 < 4 ? NCL / 8 : 4))) || return 1
	for l in 1 2 3; do
		"$CHAINADM" snapshot $DEV "$work/${LAYERS[l]}.img" >/dev/null || return 1
		if [ $l -lt 3 ]; then
			fill_stride "${LAYERS[l]}" $l || return 1
		fi
	done
	# cur: the last quarter, with holes in it, and one cluster over sn1's.
	# shellcheck disable=SC2046
	write_ops /dev/mapper/$DEV "$work/model" cur $CS "d:$((NCL * 3 / 4)):$((NCL / 4))" \
		$(discard_ops $((NCL * 3 / 4)) 2 $((NCL / 8 < 4 ? NCL / 8 : 4))) "d:1:1" ||
		return 1
	cmp /dev/mapper/$DEV "$work/model" && "$CHAINADM" remove $DEV &&
	save_files "$work/saved" "$work"/*.img
}

# same LABEL FILE... : the chain of FILE (top first: chainadm create
# finds the rest) shows the reference.
same() {
	local label=$1
	"$CHAINADM" create $CHK "$2" >/dev/null &&
	cmp /dev/mapper/$CHK "$work/model"
	tap_check "$label" test $? = 0
	"$CHAINADM" remove $CHK >/dev/null 2>&1
}

# Reads completed on the device so far.
dev_reads() {
	local m
	m=$(dmsetup info -c --noheadings -o minor $DEV | tr -d ' ')
	awk '{print $1}' "/sys/block/dm-$m/stat"
}

# load_start : the guest load of the busy cases (see the top), on the
# device; returns once it runs.
load_start() {
	local r0
	rm -f "$work/busy.stop" "$work/busy.n"
	r0=$(dev_reads)
	fio --name=load --filename=/dev/mapper/$DEV --rw=randread --bs=4k \
		--iodepth=4 --ioengine=libaio --direct=1 --time_based \
		--runtime=600 --output="$work/fio.out" &
	load_fio=$!
	(
		n=0
		while [ ! -e "$work/busy.stop" ]; do
			write_ops /dev/mapper/$DEV "$work/model" "busy $n" $CS \
				"d:$((RANDOM % NCL)):1" || exit 1
			n=$((n + 1))
			echo $n > "$work/busy.n"
		done
	) &
	load_writer=$!
	# The job starts once the load did: fio reads, the first write is in.
	while { [ ! -s "$work/busy.n" ] || [ "$(dev_reads)" -lt $((r0 + 100)) ]; } &&
		kill -0 $load_writer 2>/dev/null && kill -0 $load_fio 2>/dev/null; do
		sleep 0.1
	done
	load_n0=$(cat "$work/busy.n")
}

# load_stop LABEL : stop the load; its reads and writes must have succeeded.
load_stop() {
	echo "# $1: the guest made $(($(cat "$work/busy.n") - load_n0)) writes during the job"
	touch "$work/busy.stop"
	wait $load_writer
	tap_check "$1: the guest's writes succeed" test $? = 0
	kill -INT $load_fio
	wait $load_fio
	tap_check "$1: the guest's reads succeed" grep -q "err= 0" "$work/fio.out"
}

# job LABEL VERB ARGS... : run the job on a fresh chain, under the load
# when LOAD=1 (the caller then restores the reference), then the checks
# every case shares.
job() {
	local label=$1 rc args
	shift
	args="$1 ${*:3}"
	args=${args% }
	stack_fresh cur || { tap_fail "$label: create the device"; return 1; }
	[ "${LOAD:-0}" = 0 ] || load_start
	timeout 300 "$CHAINADM" "$@" --wait > "$work/job.out" 2>&1
	rc=$?
	[ "${LOAD:-0}" = 0 ] || load_stop "$label"
	sed 's/^/# /' "$work/job.out"
	tap_check "$label: chainadm $args succeeds" test $rc = 0
	[ $rc = 0 ] || return 1
	tap_check "$label: the device shows the reference's bytes" \
		cmp /dev/mapper/$DEV "$work/model"
	"$CHAINADM" remove $DEV
}

# busy_cases : pull and commit under load.
busy_cases() {
	cp "$work/model" "$work/model.idle"
	if LOAD=1 job "$c, pull under load" pull $DEV; then
		same "$c, pull under load: cur.img alone shows the reference" "$work/cur.img"
	fi
	cp "$work/model.idle" "$work/model"
	if LOAD=1 job "$c, commit under load" commit $DEV --top "$work/sn2.img" \
			--base "$work/base.img"; then
		same "$c, commit under load: cur.img over base.img shows the reference" \
			"$work/cur.img"
	fi
	cp "$work/model.idle" "$work/model"
}

for spec in "4096 4" "65536 16" "2097152 32"; do
	read -r CS mib <<< "$spec"
	SIZE=$((mib << 20))
	NCL=$((SIZE / CS))
	c="cluster $((CS / 1024)) KiB"
	build || die "$c: cannot build the chain"
	tap_ok "$c: striped chain with holes shows the reference's bytes"

	if job "$c, pull" pull $DEV; then
		same "$c, pull: cur.img alone shows the reference" "$work/cur.img"
		"$CHAINADM" check "$work/cur.img" > "$work/check.out" 2>&1
		tap_check "$c, pull: cur.img passes check" test $? = 0
	fi
	if job "$c, commit" commit $DEV --top "$work/sn2.img" --base "$work/base.img"; then
		tap_check "$c, commit: cur.img now stands on base.img" \
			test "$(backing_names "$work/cur.img")" = "cur.img base.img"
		same "$c, commit: cur.img over base.img shows the reference" "$work/cur.img"
		"$CHAINADM" check "$work/base.img" > "$work/check.out" 2>&1
		tap_check "$c, commit: base.img passes check" test $? = 0
	fi
	if job "$c, copy" copy $DEV "$work/dest.img" --finish; then
		same "$c, copy: dest.img alone shows the reference" "$work/dest.img"
	fi
	if job "$c, raw copy" copy $DEV "$work/dest.raw" --raw --finish; then
		tap_check "$c, raw copy: dest.raw holds the reference's bytes" \
			cmp "$work/dest.raw" "$work/model"
	fi
	[ "$CS" = 65536 ] && busy_cases
	detach_loops "$work"
done

tap_check "kernel log is clean" kmsg_check
tap_end
