#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# create --layers refuses a layer listed twice before it opens anything:
# the same file (st_dev + st_ino, whatever the path) or the same block
# device (st_rdev).  Every case here is refused offline, before any
# device-mapper call.
. "$(dirname "$0")/host-lib.inc"

plan 7

DEV=chainadm-hosttest-$$
trap '"$CHAINADM" remove "$DEV" >/dev/null 2>&1; rm -rf "$SCRATCH"' EXIT

truncate -s 64M base.raw
new_layer s1 --backing base.raw
new_layer s2 --backing s1

expect "the same path twice" 2 \
	"chainadm: s1: appears twice in the list (layers 1 and 2, as s1 and s1): list each layer once" \
	"$CHAINADM" create --layers --raw-base "$DEV" base.raw s1 s1
expect "the same file by another path" 2 \
	"chainadm: ./s1: appears twice in the list (layers 1 and 3, as s1 and ./s1)" \
	"$CHAINADM" create --layers --raw-base "$DEV" base.raw s1 s2 ./s1
ln s1 s1.hard
expect "the same file by a hard link" 2 "appears twice in the list (layers 1 and 2" \
	"$CHAINADM" create --layers --raw-base "$DEV" base.raw s1 s1.hard
ln -s base.raw base.link
expect "the raw base again through a symlink" 2 \
	"chainadm: base.link: appears twice in the list (layers 0 and 1" \
	"$CHAINADM" create --layers --raw-base "$DEV" base.raw base.link s1
# The duplicate is reported before a missing layer further down.
expect "the duplicate comes first" 2 "appears twice" \
	"$CHAINADM" create --layers --raw-base "$DEV" nosuch s1 s1
# A copy is another file: not a duplicate, the link check refuses it.
cp --sparse=always s1 s1.copy
expect "a copy is another file: the link check refuses it" 2 \
	"chainadm: s1.copy: backing type is raw, but s1 is given below it" \
	"$CHAINADM" create --layers --raw-base "$DEV" base.raw s1 s1.copy

# Block devices compare by st_rdev; any block node will do, never opened.
blk=$(find /dev -maxdepth 1 -type b 2>/dev/null | head -n 1)
if [ -n "$blk" ] && cp -a "$blk" blk.node 2>/dev/null; then
	expect "one block device through two nodes" 2 \
		"chainadm: blk.node: appears twice in the list (layers 0 and 1, as $blk and blk.node)" \
		"$CHAINADM" create --layers --raw-base "$DEV" "$blk" blk.node s1
else
	TEST_NR=$((TEST_NR + 1))
	echo "ok $TEST_NR - one block device through two nodes # SKIP no block device node to copy"
fi

finish
