#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Smoke of `make bench`: tools/bench/bench-guest's I/O section with tiny
# sizes and one-second fio runs, on every system (dm-linear, dm-snapshot,
# dm-thin, dm-chain and qcow2 through qemu-nbd at depth 2, and dm-linear
# with the chain's layout).  It must run to the end and produce
# results.json with every system and every I/O figure, each with its ratio
# to dm-linear, and the markdown table and its plot.
# The scale section runs at 1 GiB, depths 1 and 2, one load each (for
# CI's hour: the section's loads, formats and memory readings cost some
# five minutes at depths 1 and 4, three loads, under load): the empty chains must
# read no table block while they load, the half-mapped ones their entries,
# and the report must hold its table and plots.  The job, foreground,
# bandwidth and memory sections are left to `make bench`: at any size
# they cost minutes of guest time per kernel.  Its
# data checks: a fio write job with crc32c verification through the chain,
# the chain's bytes equal to those of the qcow2 chain built the same way,
# and to those of the dm-linear table the bench builds from the layers'
# cluster tables; the chain's copy-up figures paired with a dm-snapshot.
# No figure is judged: under emulation timing means nothing here.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd fio jq gnuplot qemu-img qemu-io qemu-nbd dmsetup losetup mkfs.ext4 cmp
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"
modprobe -n nbd 2>/dev/null || skip_all "no nbd module"
modprobe -n dm-thin-pool 2>/dev/null || skip_all "no dm-thin-pool module"
modprobe -n dm-snapshot 2>/dev/null || skip_all "no dm-snapshot module"

SYSTEMS="linear snapshot thin chain qcow2"
IO_METRICS="randread_4k_qd1_p50_us randread_4k_qd1_p99_us randread_4k_qd32_iops
	seqread_1m_qd4_mibs randwrite_4k_owned_qd1_iops randwrite_4k_owned_qd32_iops
	seqwrite_1m_qd4_mibs randwrite_4k_fresh_qd1_iops randwrite_4k_fresh_qd32_iops"

tap_plan 15
kmsg_mark
out=$(mktemp -d /tmp/bench_smoke.XXXXXX)
on_exit rm -rf "$out"

SCALE_DEPTHS="1 2" SCALE_LOADS=1 timeout 1700 "$CHAIN_ROOT/tools/bench/bench-guest" --out "$out" --smoke \
	--size 16 --runtime 1 --depths 2 --job-depth 2 --sections "io scale" \
	--scale-sizes 1 > "$out/log" 2>&1
rc=$?
sed 's/^/# /' "$out/log"
tap_check "bench-guest runs to the end" test $rc = 0

tap_check "results.json parses" jq -e '.results | length > 0' "$out/results.json"

# has SYSTEM METRIC : results.json holds a number for it.
has() {
	jq -e --arg s "$1" --arg m "$2" \
		'[.results[] | select(.system == $s and .metric == $m and (.value | type) == "number")] | length > 0' \
		"$out/results.json" > /dev/null
}

missing=
for s in $SYSTEMS; do
	for m in $IO_METRICS; do
		has "$s" "$m" || missing="$missing $s/$m"
	done
done
[ -z "$missing" ] || log "missing:$missing"
tap_check "results.json has every system and I/O figure" test -z "$missing"

missing=
for m in randread_4k_qd1_p50_us randread_4k_qd32_iops seqread_1m_qd4_mibs; do
	has fan "$m" || missing="$missing fan/$m"
done
[ -z "$missing" ] || log "missing:$missing"
tap_check "results.json has the read figures of dm-linear with the chain's layout" \
	test -z "$missing"

missing=
for m in snap_randwrite_4k_fresh_qd1_iops snap_randwrite_4k_fresh_qd32_iops; do
	has chain "$m" || missing="$missing chain/$m"
done
[ -z "$missing" ] || log "missing:$missing"
tap_check "the chain's copy-up figures are paired with dm-snapshot's" \
	test -z "$missing" -a "$(grep -c '(paired)' "$out/results.md")" = 2

tap_check "every figure carries its ratio to dm-linear" jq -e \
	'[.results[] | select(.metric == "randread_4k_qd1_p99_us" and .vs_linear == null)] | length == 0' \
	"$out/results.json"

tap_check "results.md has the tables" \
	grep -q '^| system | us | vs dm-linear | vs best peer | best peer |' "$out/results.md"
tap_check "the I/O plot was drawn" test -s "$out/io.png"

val() {
	jq -r --arg m "$1" '[.results[] | select(.metric == $m)][0].value' "$out/results.json"
}
tap_check "fio crc32c verify through the depth-2 chain" test "$(val smoke_verify_ok)" = 1
tap_check "the chain shows the same bytes as the qcow2 chain" \
	test "$(val smoke_same_as_qcow2)" = 1
tap_check "dm-linear with the chain's layout shows the chain's bytes" \
	test "$(val smoke_fan_same_as_chain)" = 1

# scale_read DEPTH FILL : KiB the loop devices read while that chain loaded
scale_read() {
	jq -r --arg m "scale_1g_$2_read_kib" --argjson d "$1" \
		'[.results[] | select(.metric == $m and .depth == $d)][0].value | floor' "$out/results.json"
}
# Headers (two slots, read a few times) and a 4 KiB map a layer: under
# 64 KiB a layer.  Half of 1 GiB at 64 KiB clusters: 64 KiB of entries.
tap_check "scale: the empty chains read headers and maps only" eval \
	'[ "$(scale_read 1 empty)" -lt 64 ] && [ "$(scale_read 2 empty)" -lt 128 ]'
tap_check "scale: the half-mapped chains read their 64 KiB of entries" eval \
	'[ "$(scale_read 1 half)" -ge 64 ] && [ "$(scale_read 2 half)" -ge 64 ] &&
	 [ "$(scale_read 2 half)" -lt $((2 * 64 + 64)) ]'
tap_check "scale: results.md has the table, and both plots were drawn" eval \
	'[ "$(grep -c "^| 1 GiB |" "$out/results.md")" = 4 ] &&
	 [ -s "$out/scale_create.png" ] && [ -s "$out/scale_kmem.png" ]'

tap_check "kernel log is clean" kmsg_check
tap_done
