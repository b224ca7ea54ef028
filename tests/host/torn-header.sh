#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# A header read that races two commits of a live layer sees both slots
# torn; chainadm reads again while the bytes keep changing (a live
# snapshot used to fail here), and still refuses a header that is bad the
# same way twice or keeps changing for ten reads.  tests/host/torn-read.c tears the first reads.
. "$(dirname "$0")/host-lib.inc"

SHIM=$SCRATCH/torn-read.so
cc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$SHIM" "$HOST_DIR/torn-read.c" -ldl ||
	{ echo "Bail out! cannot build the shim"; exit 1; }

plan 4

new_layer base
torn() {	# torn <reads> <cmd...>: the first <reads> header reads are torn
	local n=$1
	shift
	TORN_PATH=$SCRATCH/base TORN_READS=$n LD_PRELOAD=$SHIM "$@"
}

expect "info reads a header that was torn twice" 0 "generation:" \
	torn 2 "$CHAINADM" info base
expect "format over a layer whose header was torn three times" 0 "" \
	torn 3 "$CHAINADM" format --quiet --backing base over
expect "the overlay links to it" 0 "backing type: chain" "$CHAINADM" info over
# Torn on every read: chainadm gives up after its tries and says why.
expect "a header torn on every read is refused" 2 "header checksum mismatch" \
	torn 1000 "$CHAINADM" info base
finish
