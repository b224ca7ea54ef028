#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# The userspace CRC32C against known vectors, and a header checksum made
# by chainadm that the shared validation code accepts.
. "$(dirname "$0")/host-lib.inc"

plan 5

expect "crc32c(\"123456789\") = e3069283" 0 e3069283 "$POKE" crc 123456789
expect "crc32c(\"\") = 00000000" 0 00000000 "$POKE" crc ""
expect "crc32c(\"a\") = c1d04330" 0 c1d04330 "$POKE" crc a
expect "crc32c(\"The quick brown fox...\") = 22620404" 0 22620404 \
	"$POKE" crc "The quick brown fox jumps over the lazy dog"

new_layer l
expect "a freshly formatted header passes its checksum" 0 \
	"no inconsistencies found" "$CHAINADM" check l

finish
