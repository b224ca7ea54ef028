#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# The test programs' own self-test (chain-iotest, chain-stamp, lw-replay
# on regular files), so a broken checker cannot pass guest tests.
make -s -C "$(dirname "$0")/../progs" >/dev/null || exit 1
exec "$(dirname "$0")/../progs/selftest.sh"
