#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# chainadm format and info: round trip, JSON, backing chains, refusals.
. "$(dirname "$0")/host-lib.inc"

plan 25

expect "format a 64 MiB layer" 0 "virtual size 64 MiB, cluster size 64 KiB" \
	"$CHAINADM" format --size 64M base
run stat -c %s base
[ "$OUT" = $((64 * 1024 * 1024 + 65536)) ] && pass "file sized for every cluster" ||
	fail "file sized for every cluster" "size $OUT"
run du -k base
[ "${OUT%%[[:space:]]*}" -le 64 ] && pass "file is sparse" ||
	fail "file is sparse" "du: $OUT"

expect "info: file format" 0 "file format: dm-chain" "$CHAINADM" info base
expect "info: virtual size" 0 "virtual size: 64 MiB (67108864 bytes)" "$CHAINADM" info base
expect "info: cluster size" 0 "cluster size: 64 KiB (65536 bytes)" "$CHAINADM" info base
expect "info: generation 1 in slot 1" 0 "generation: 1 (header slot 1)" "$CHAINADM" info base
expect "info: no backing" 0 "backing type: none" "$CHAINADM" info base
expect "info: all clusters absent" 0 "clusters: 1024 (0 mapped, 0 zero, 1024 absent)" \
	"$CHAINADM" info base

expect "format an overlay over a chain layer" 0 "backing $SCRATCH/base (chain)" \
	"$CHAINADM" format --backing base --cluster-size 64K sn1
"$POKE" sn1 alloc 3
uuid=$("$CHAINADM" info --json -o uuid base | jq -r '.layers[0].uuid')
expect "overlay records the backing UUID" 0 "backing uuid: $uuid" "$CHAINADM" info sn1
expect "overlay records the absolute backing path" 0 "backing file: $SCRATCH/base" \
	"$CHAINADM" info sn1
expect "info counts a mapped cluster" 0 "clusters: 1024 (1 mapped, 0 zero, 1023 absent)" \
	"$CHAINADM" info sn1

run "$CHAINADM" info --json sn1
printf '%s' "$OUT" | jq -e --arg u "$uuid" '.layers | length == 1 and
	(.[0] | .format == "dm-chain" and ."virtual-size" == 64 * 1048576 and
	 ."cluster-size" == 65536 and ."mapped-clusters" == 1 and
	 ."zero-clusters" == 0 and ."absent-clusters" == 1023 and
	 ."backing-type" == "chain" and ."backing-uuid" == $u and
	 .flags == [null] and .job == false and ."job-type" == null)' > /dev/null &&
	pass "info --json: one line of the table layers, every field" ||
	fail "info --json: one line of the table layers, every field" "$OUT"
run "$CHAINADM" info -o filename,format,mapped-clusters --raw --noheadings sn1
[ "$RC" = 0 ] && [ "$OUT" = "sn1 dm-chain 1" ] &&
	pass "info -o filename,format,mapped-clusters --raw --noheadings: those fields, bare" ||
	fail "info -o filename,format,mapped-clusters --raw --noheadings" "$OUT" "$ERR"

"$CHAINADM" format --quiet -b sn1 top
run "$CHAINADM" info --backing-chain top
n=$(printf '%s\n' "$OUT" | grep -c '^image:')
[ "$RC" -eq 0 ] && [ "$n" -eq 3 ] && pass "info --backing-chain shows three layers" ||
	fail "info --backing-chain shows three layers" "$OUT" "$ERR"
run "$CHAINADM" info --backing-chain --json top
n=$(printf '%s\n' "$OUT" | jq -r '.layers[].filename' | xargs -n 1 basename | paste -sd ' ')
[ "$RC" -eq 0 ] && [ "$n" = "top sn1 base" ] &&
	pass "info --backing-chain --json: a line a layer, top first" ||
	fail "info --backing-chain --json: a line a layer, top first" "$OUT"

# A raw base: any file, its size is the virtual size, never probed.
truncate -s 32M raw.img
expect "format over a raw base" 0 "(raw)" "$CHAINADM" format -b raw.img -F raw over-raw
expect "raw base: virtual size from the raw file" 0 "virtual size: 32 MiB" \
	"$CHAINADM" info over-raw
expect "info --backing-chain shows the raw base as raw" 0 "file format: raw" \
	"$CHAINADM" info --backing-chain over-raw
expect "--layer-size caps the file" 0 "layer size: 1 MiB" \
	sh -c "'$CHAINADM' format -q -s 1G --layer-size 1M small && '$CHAINADM' info small"

expect "refuses to overwrite a file" 2 "File exists" "$CHAINADM" format --size 1M base
expect "refuses a mismatched cluster size" 2 "one cluster size per chain" \
	"$CHAINADM" format -b base -c 128K bad
expect "refuses a size that is not a multiple of 4K" 1 "multiple of 4K" \
	"$CHAINADM" format --size 1000 bad
expect "refuses a missing --size" 1 "--size is required" "$CHAINADM" format bad

finish
