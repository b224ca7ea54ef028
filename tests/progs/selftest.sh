#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host self-test of the test programs: chain-iotest, chain-stamp,
# lw-replay and lw-explore (with lw-mklog), on regular files in a
# temporary directory.
# The programs must be able to catch the failures they exist for, so most
# tests corrupt something on purpose and expect exit 1 with a precise
# message.  Prints TAP; exits 0 if every test passed, 1 otherwise.

set -u

PROGS=$(cd "$(dirname "$0")" && pwd)
IOTEST=$PROGS/chain-iotest
STAMP=$PROGS/chain-stamp
REPLAY=$PROGS/lw-replay
MKLOG=$PROGS/lw-mklog
EXPLORE=$PROGS/lw-explore

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dm-chain-progs.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM
LOG=$TMP/out		# output of the last command run by expect()

# ---- helpers

# expect RC [PATTERN] -- CMD...: run CMD, want exit RC and PATTERN in output.
expect() {
	local want=$1 pattern= rc
	shift
	if [ "$1" != -- ]; then
		pattern=$1
		shift
	fi
	shift
	"$@" >"$LOG" 2>&1
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "'$*' exited $rc, expected $want"
		sed 's/^/    /' "$LOG"
		return 1
	fi
	if [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$LOG"; then
		echo "'$*' output lacks /$pattern/:"
		sed 's/^/    /' "$LOG"
		return 1
	fi
}

# Read byte OFF of FILE as a decimal number.
byte_at() {
	od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '
}

# Overwrite byte OFF of FILE with decimal VALUE.
poke() {
	printf "$(printf '\\%03o' "$3")" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# Copy 512-byte sector SRC_SECT of SRC to sector DST_SECT of DST.
copy_sector() {
	dd if="$1" of="$3" bs=512 skip="$2" seek="$4" count=1 conv=notrunc \
		status=none
}

# Is sector S of FILE all zeros?
sector_is_zero() {
	[ "$(dd if="$1" bs=512 skip="$2" count=1 status=none | tr -d '\0' |
		head -c1 | wc -c)" -eq 0 ]
}

# Sectors whose state byte says old-or-zero, one per line.
undefined_sectors() {
	od -An -tu1 -v -w1 "$1" | awk '$1 == 1 { print NR - 1 }'
}

# An old-or-zero sector of MODEL whose old content is not zero, after SKIP.
pick_undefined_nonzero() {
	local s n=0
	for s in $(undefined_sectors "$1.state"); do
		sector_is_zero "$1" "$s" && continue
		n=$((n + 1))
		[ "$n" -gt "$2" ] && { echo "$s"; return 0; }
	done
	return 1
}

# ---- chain-iotest

IO_SIZE=8M

io() {
	"$IOTEST" --size $IO_SIZE --cluster 64K "$@"
}

test_iotest_usage() {
	expect 0 '^Usage:' -- "$IOTEST" --help &&
	expect 2 'chain-iotest: arguments: --dev' -- "$IOTEST" --ops 1 &&
	expect 2 "chain-iotest: --size: invalid size: '8X'" -- \
		"$IOTEST" --dev x --model y --size 8X --ops 1 &&
	expect 2 'chain-iotest: --cluster: not a power of two' -- \
		"$IOTEST" --dev x --model y --size 8M --cluster 3K --ops 1 &&
	expect 2 'chain-iotest: .*/nonexistent: open: No such file' -- \
		"$IOTEST" --dev "$TMP/nonexistent" --model y --size 8M --ops 1
}

test_iotest_run_verify() {
	local d=$TMP/io
	mkdir -p "$d" && truncate -s $IO_SIZE "$d/dev" &&
	expect 0 'seed 7: 3000 ops: read [0-9]+ .* zero [0-9]+ .*; verify ok' \
		-- io --dev "$d/dev" --model "$d/model" --seed 7 --ops 3000 \
		--verify &&
	expect 0 'verify ok' -- io --dev "$d/dev" --model "$d/model" \
		--verify-only
}

test_iotest_continue() {
	local d=$TMP/io
	expect 0 'seed 8: 2000 ops' -- io --dev "$d/dev" --model "$d/model" \
		--seed 8 --ops 2000 --mix 30:30:30:10 --max-len 1M &&
	expect 0 'verify ok' -- io --dev "$d/dev" --model "$d/model" \
		--verify-only
}

test_iotest_deterministic() {
	local d=$TMP/det i
	mkdir -p "$d"
	for i in a b c; do
		truncate -s $IO_SIZE "$d/dev.$i" || return 1
	done
	expect 0 -- io --dev "$d/dev.a" --model "$d/model.a" --seed 3 \
		--ops 500 &&
	expect 0 -- io --dev "$d/dev.b" --model "$d/model.b" --seed 3 \
		--ops 500 &&
	expect 0 -- io --dev "$d/dev.c" --model "$d/model.c" --seed 4 \
		--ops 500 &&
	cmp "$d/dev.a" "$d/dev.b" && cmp "$d/model.a" "$d/model.b" &&
	! cmp -s "$d/dev.a" "$d/dev.c"
}

test_iotest_detects_corruption() {
	local d=$TMP/io off=1234567 b
	cp "$d/dev" "$d/dev.bad" && b=$(byte_at "$d/model" $off) &&
	poke "$d/dev.bad" $off $((b ^ 255)) &&
	expect 1 "byte offset $off \(sector $((off / 512))\): expected 0x" -- \
		io --dev "$d/dev.bad" --model "$d/model" --verify-only &&
	expect 1 'verify failed: 1 of 16384 sectors differ' -- \
		io --dev "$d/dev.bad" --model "$d/model" --verify-only
}

test_iotest_read_op_detects() {
	local d=$TMP/io
	cp "$d/dev" "$d/dev.garbage" && cp "$d/model" "$d/model.g" &&
	cp "$d/model.state" "$d/model.g.state" &&
	head -c 4M /dev/urandom | dd of="$d/dev.garbage" bs=1M seek=2 \
		conv=notrunc status=none &&
	expect 1 'data mismatch: op [0-9]+ read offset [0-9]+ length' -- \
		io --dev "$d/dev.garbage" --model "$d/model.g" --ops 300 \
		--mix 100:0:0:0
}

# Partial-cluster discards leave old-or-zero sectors; the file reads zeros.
# Putting the old data back must pass (and pin it), then zeros must fail.
test_iotest_discard_old_or_zero() {
	local d=$TMP/disc s
	mkdir -p "$d" && truncate -s $IO_SIZE "$d/dev" &&
	expect 0 -- io --dev "$d/dev" --model "$d/model" --seed 11 \
		--ops 400 --mix 0:50:50:0 || return 1
	s=$(pick_undefined_nonzero "$d/model" 0) ||
		{ echo "no old-or-zero sector with old data"; return 1; }
	sector_is_zero "$d/dev" "$s" || { echo "sector $s not zero"; return 1; }
	copy_sector "$d/model" "$s" "$d/dev" "$s" &&
	cp "$d/dev" "$d/dev.zero" &&
	expect 0 'verify ok' -- io --dev "$d/dev" --model "$d/model" \
		--verify-only &&
	[ "$(undefined_sectors "$d/model.state" | wc -l)" -eq 0 ] &&
	dd if=/dev/zero of="$d/dev.zero" bs=512 seek="$s" count=1 \
		conv=notrunc status=none &&
	expect 1 "sector $s\): expected" -- io --dev "$d/dev.zero" \
		--model "$d/model" --verify-only
}

test_iotest_discard_garbage() {
	local d=$TMP/disc2 s
	mkdir -p "$d" && truncate -s $IO_SIZE "$d/dev" &&
	expect 0 -- io --dev "$d/dev" --model "$d/model" --seed 12 \
		--ops 400 --mix 0:50:50:0 || return 1
	s=$(pick_undefined_nonzero "$d/model" 1) ||
		{ echo "no old-or-zero sector with old data"; return 1; }
	head -c 512 /dev/urandom | dd of="$d/dev" bs=512 seek="$s" \
		conv=notrunc status=none &&
	expect 1 "sector $s\): expected 0x[0-9a-f]{2} \(old data; a sector of zeros" \
		-- io --dev "$d/dev" --model "$d/model" --verify-only
}

test_iotest_init_model_from() {
	local d=$TMP/init
	mkdir -p "$d" && head -c $((8 << 20)) /dev/urandom >"$d/dev" &&
	expect 1 'verify failed' -- io --dev "$d/dev" --model "$d/fresh" \
		--verify-only &&
	expect 0 'verify ok' -- io --dev "$d/dev" --model "$d/model" \
		--init-model-from "$d/dev" --ops 500 --verify
}

test_iotest_cluster_sizes() {
	local d=$TMP/cs
	mkdir -p "$d" && truncate -s 16M "$d/dev4k" "$d/dev2m" &&
	expect 0 'verify ok' -- "$IOTEST" --dev "$d/dev4k" --model "$d/m4k" \
		--size 16M --cluster 4K --max-len 64K --ops 1500 --verify &&
	expect 0 'verify ok' -- "$IOTEST" --dev "$d/dev2m" --model "$d/m2m" \
		--size 16M --cluster 2M --ops 300 --verify &&
	expect 2 'size mismatch' -- "$IOTEST" --dev "$d/dev2m" \
		--model "$d/m2m" --size 8M --verify-only
}

# ---- chain-stamp

ST_SIZE=4M
ST=$TMP/st

stamp_check() {
	"$STAMP" check --size $ST_SIZE --journal "$ST/journal" "$@"
}

test_stamp_usage() {
	expect 0 '^Usage:' -- "$STAMP" --help &&
	expect 2 'missing command' -- "$STAMP" &&
	expect 2 "unknown command" -- "$STAMP" frob &&
	expect 2 'check: missing arguments' -- "$STAMP" check --dev x \
		--size 1M &&
	expect 2 "invalid value" -- "$STAMP" check --dev x --journal j \
		--size 1M --initial maybe
}

test_stamp_fill() {
	mkdir -p "$ST" && truncate -s $ST_SIZE "$ST/filled" &&
	expect 0 'filled 8192 sectors' -- "$STAMP" fill --dev "$ST/filled" \
		--size $ST_SIZE &&
	expect 0 'check ok: 8192 sectors, 0 from journaled' -- \
		stamp_check --dev "$ST/filled" --initial stamped &&
	expect 1 'sector 0: id-0 stamp of run 0 but no --initial stamped' -- \
		stamp_check --dev "$ST/filled"
}

# Snapshot the device at every flush, through --mark-cmd.
test_stamp_write() {
	cp "$ST/filled" "$ST/dev" &&
	expect 0 'run 1: 300 writes \(ids 1..300\), last flush 12' -- \
		"$STAMP" write --dev "$ST/dev" --journal "$ST/journal" \
		--size $ST_SIZE --seed 5 --ops 300 --flush-every 25 \
		--mark-cmd "cp '$ST/dev' '$ST/snap.%d' && echo %d >>'$ST/marks'" &&
	[ "$(tr '\n' ' ' <"$ST/marks")" = "1 2 3 4 5 6 7 8 9 10 11 12 " ] &&
	grep -qx 'flush 12 done after 300' "$ST/journal" &&
	expect 0 'no flushed write lost' -- stamp_check --dev "$ST/dev" \
		--initial stamped --upto-flush 12
}

# Each snapshot is the disk after a power cut right after flush k.
test_stamp_flush_points() {
	local k
	for k in 1 2 6 11; do
		expect 0 'no flushed write lost' -- stamp_check \
			--dev "$ST/snap.$k" --initial stamped --upto-flush $k &&
		expect 1 "was acked before flush $((k + 1)) \(lost write\)" -- \
			stamp_check --dev "$ST/snap.$k" --initial stamped \
			--upto-flush $((k + 1)) || return 1
	done
	expect 2 'no such flush: flush 13 not in journal' -- stamp_check \
		--dev "$ST/dev" --upto-flush 13
}

test_stamp_misdirected() {
	cp "$ST/dev" "$ST/dev.mis" && copy_sector "$ST/dev" 100 "$ST/dev.mis" 7 &&
	expect 1 'sector 7: stamp of sector 100 id [0-9]+ \(misdirected' -- \
		stamp_check --dev "$ST/dev.mis" --initial stamped
}

test_stamp_torn() {
	local b
	cp "$ST/dev" "$ST/dev.torn" && b=$(byte_at "$ST/dev.torn" 4700) &&
	poke "$ST/dev.torn" 4700 $((b ^ 1)) &&
	expect 1 'sector 9: torn or corrupt \(bad checksum\)' -- \
		stamp_check --dev "$ST/dev.torn" --initial stamped &&
	cp "$ST/dev" "$ST/dev.garb" &&
	head -c 512 /dev/urandom | dd of="$ST/dev.garb" bs=512 seek=3 \
		conv=notrunc status=none &&
	expect 1 'sector 3: garbage' -- stamp_check --dev "$ST/dev.garb" \
		--initial stamped
}

# A valid stamp whose write id this journal never issued is stale data.
test_stamp_foreign() {
	local s
	truncate -s $ST_SIZE "$ST/other" &&
	expect 0 -- "$STAMP" write --dev "$ST/other" --size $ST_SIZE \
		--journal "$ST/other.journal" --seed 6 --ops 600 || return 1
	s=$(awk '$1 == "start" { s = $3 } END { print s }' "$ST/other.journal")
	cp "$ST/dev" "$ST/dev.foreign" &&
	copy_sector "$ST/other" "$s" "$ST/dev.foreign" "$s" &&
	expect 1 "sector $s: id 600 not in journal \(last 300\)" -- \
		stamp_check --dev "$ST/dev.foreign" --initial stamped
}

# A writer killed after journaling "start" but before "ack": the data may
# be on disk and must be accepted; without the "start" it must not.
test_stamp_killed_writer() {
	local j=$ST/journal
	head -n -2 "$j" >"$ST/j.killed" &&
	[ "$(tail -n1 "$ST/j.killed" | cut -d' ' -f1,2)" = "start 300" ] &&
	printf 'start 301 5' >>"$ST/j.killed" &&
	expect 0 'check ok' -- "$STAMP" check --dev "$ST/dev" --size $ST_SIZE \
		--journal "$ST/j.killed" --initial stamped &&
	head -n -3 "$j" >"$ST/j.lost" &&
	expect 1 'id 300 not in journal \(last 299\)' -- "$STAMP" check \
		--dev "$ST/dev" --size $ST_SIZE --journal "$ST/j.lost" \
		--initial stamped &&
	printf 'ack 7\nbogus\n' >>"$ST/j.lost" &&
	expect 2 'bad journal line.*: bogus' -- "$STAMP" check \
		--dev "$ST/dev" --size $ST_SIZE --journal "$ST/j.lost"
}

# A real kill -9 at a random moment; whatever reached the file must check.
test_stamp_sigkill() {
	local d=$ST/kill
	mkdir -p "$d" && truncate -s $ST_SIZE "$d/dev" &&
	timeout -s KILL 0.5 "$STAMP" write --dev "$d/dev" --size $ST_SIZE \
		--journal "$d/journal" --ops 1000000 --flush-every 10 \
		>/dev/null 2>&1
	[ $? -eq 137 ] || { echo "writer was not killed"; return 1; }
	grep -q '^flush 1 ' "$d/journal" || { echo "no flush journaled"; return 1; }
	expect 0 'check ok' -- "$STAMP" check --dev "$d/dev" --size $ST_SIZE \
		--journal "$d/journal" &&
	expect 0 'no flushed write lost' -- "$STAMP" check --dev "$d/dev" \
		--size $ST_SIZE --journal "$d/journal" --upto-flush \
		"$(awk '$1 == "flush" { k = $2 } END { print k }' "$d/journal")"
}

test_stamp_second_run() {
	expect 0 'run 2: 100 writes \(ids 301..400\), last flush 16' -- \
		"$STAMP" write --dev "$ST/dev" --journal "$ST/journal" \
		--size $ST_SIZE --seed 9 --ops 100 --flush-every 30 &&
	expect 0 'no flushed write lost' -- stamp_check --dev "$ST/dev" \
		--initial stamped --upto-flush 16
}

# On a zeroed device zeros mean "never written", unless a flush says not.
test_stamp_zero_initial() {
	local s
	truncate -s $ST_SIZE "$ST/z" &&
	expect 0 -- "$STAMP" write --dev "$ST/z" --journal "$ST/z.journal" \
		--size $ST_SIZE --ops 50 --max-len 8K || return 1
	s=$(awk '$1 == "start" { s = $3 } END { print s }' "$ST/z.journal")
	dd if=/dev/zero of="$ST/z" bs=512 seek="$s" count=1 conv=notrunc \
		status=none &&
	expect 0 'check ok' -- "$STAMP" check --dev "$ST/z" --size $ST_SIZE \
		--journal "$ST/z.journal" &&
	expect 1 "sector $s: zeros, but id 50 was acked before flush 1" -- \
		"$STAMP" check --dev "$ST/z" --size $ST_SIZE \
		--journal "$ST/z.journal" --upto-flush 1
}

# ---- lw-replay

LW=$TMP/lw

mklog() {
	"$MKLOG" --size 1M --log "$LW/log" --image "$LW/final" \
		--snap-prefix "$LW/snap" "$@"
}

# 0 w  1 w+meta  2 flush  3 mark one  4 discard  5 flush|fua w  6 mark two
# 7 w  8 flush  9 mark dm-log-writes-end
LW_OPS="w:0:8 w:4:16:M f m:one d:2:4 w:100:3:FU m:two w:2040:8 f"

test_lw_list() {
	mkdir -p "$LW" && mklog $LW_OPS &&
	expect 0 -- "$REPLAY" --log "$LW/log" --list &&
	diff -u - "$LOG" <<-EOF
	# sectorsize 512 entries 10
	0 - 0 8 -
	1 METADATA 4 16 -
	2 FLUSH 0 0 -
	3 MARK 0 0 one
	4 DISCARD 2 4 -
	5 FLUSH|FUA 100 3 -
	6 MARK 0 0 two
	7 - 2040 8 -
	8 FLUSH 0 0 -
	9 MARK 0 0 dm-log-writes-end
	EOF
}

test_lw_replay_all() {
	truncate -s 1M "$LW/rep.all" &&
	expect 0 'replayed entries 0..9: 4 writes \(17920 bytes\), 1 discards' \
		-- "$REPLAY" --log "$LW/log" --replay "$LW/rep.all" &&
	cmp "$LW/rep.all" "$LW/final"
}

# Mark by mark on one device, each step starting where the last stopped.
test_lw_replay_incremental() {
	local r=$LW/rep.inc
	truncate -s 1M "$r" &&
	expect 0 'entries 0..3' -- "$REPLAY" --log "$LW/log" --replay "$r" \
		--end-mark one && cmp "$r" "$LW/snap.one" &&
	expect 0 'entries 4..6' -- "$REPLAY" --log "$LW/log" --replay "$r" \
		--start 4 --end-mark two && cmp "$r" "$LW/snap.two" &&
	expect 0 'entries 7..9' -- "$REPLAY" --log "$LW/log" --replay "$r" \
		--start 7 && cmp "$r" "$LW/final"
}

test_lw_replay_limit() {
	local r=$LW/rep.lim
	truncate -s 1M "$r" &&
	expect 0 'entries 0..2' -- "$REPLAY" --log "$LW/log" --replay "$r" \
		--limit 2 && cmp "$r" "$LW/snap.one" &&
	expect 0 'entries 3..5' -- "$REPLAY" --log "$LW/log" --replay "$r" \
		--start 3 --limit 5 && cmp "$r" "$LW/snap.two" &&
	expect 0 '^5 FLUSH\|FUA 100 3 -$' -- "$REPLAY" --log "$LW/log" \
		--list --start 5 --limit 5
}

test_lw_sectorsize_4k() {
	local d=$LW/4k
	mkdir -p "$d" && truncate -s 1M "$d/rep" &&
	expect 0 -- "$MKLOG" --size 1M --sectorsize 4096 --log "$d/log" \
		--image "$d/final" --snap-prefix "$d/snap" \
		w:1:3 w:250:6:F m:mid d:2:1 w:0:2:U &&
	expect 0 '^# sectorsize 4096 entries 6' -- "$REPLAY" --log "$d/log" \
		--list &&
	expect 0 -- "$REPLAY" --log "$d/log" --replay "$d/rep" \
		--end-mark mid && cmp "$d/rep" "$d/snap.mid" &&
	expect 0 -- "$REPLAY" --log "$d/log" --replay "$d/rep" --start 3 &&
	cmp "$d/rep" "$d/final"
}

test_lw_errors() {
	local r=$LW/rep.err
	truncate -s 1M "$r" && truncate -s 64K "$LW/small" &&
	expect 0 '^Usage:' -- "$REPLAY" --help &&
	expect 2 "end mark not found: 'nope'" -- "$REPLAY" --log "$LW/log" \
		--replay "$r" --end-mark nope &&
	expect 2 'no such entry: --limit 10: the log has 10 entries' -- \
		"$REPLAY" --log "$LW/log" --replay "$r" --limit 10 &&
	expect 2 'entry outside the replay device: entry 7: sector 2040 \+ 8' \
		-- "$REPLAY" --log "$LW/log" --replay "$LW/small" &&
	head -c 8192 "$LW/log" >"$LW/log.short" &&
	expect 2 'corrupt log: entry [0-9]+: .*past the end' -- "$REPLAY" \
		--log "$LW/log.short" --list &&
	cp "$LW/log" "$LW/log.bad" && poke "$LW/log.bad" 0 0 &&
	expect 2 'not a dm-log-writes log' -- "$REPLAY" --log "$LW/log.bad" \
		--list
}

# --acked-dsync: every acked write of a "dsync" run is required (an O_DSYNC
# ack is a flush of that write alone); unacked or non-dsync ones are not.
# The writer's --dsync needs a block device, so the journal is marked by
# hand here; the guest test fua.sh runs the real thing.
test_stamp_acked_dsync() {
	local d=$ST/dsync s
	mkdir -p "$d" && cp "$ST/filled" "$d/dev" &&
	expect 0 -- "$STAMP" write --dev "$d/dev" --journal "$d/journal" \
		--size $ST_SIZE --seed 13 --ops 40 --max-len 8K || return 1
	expect 2 'needs a block device' -- "$STAMP" write --dev "$d/dev" \
		--journal "$d/j2" --size $ST_SIZE --ops 1 --dsync &&
	sed 's/^run 1 .*/& dsync/' "$d/journal" >"$d/j.dsync" &&
	s=$(awk '$1 == "start" { s = $3 } END { print s }' "$d/journal") &&
	copy_sector "$ST/filled" "$s" "$d/dev" "$s" &&
	expect 0 'check ok' -- "$STAMP" check --dev "$d/dev" --size $ST_SIZE \
		--journal "$d/j.dsync" --initial stamped &&
	expect 0 'check ok' -- "$STAMP" check --dev "$d/dev" --size $ST_SIZE \
		--journal "$d/journal" --initial stamped --acked-dsync &&
	expect 1 "sector $s: id 0, but id 40 was acked with O_DSYNC \(lost write\)" \
		-- "$STAMP" check --dev "$d/dev" --size $ST_SIZE \
		--journal "$d/j.dsync" --initial stamped --acked-dsync &&
	grep -v '^ack 40$' "$d/j.dsync" >"$d/j.unacked" &&
	expect 0 'no O_DSYNC-acked write lost' -- "$STAMP" check \
		--dev "$d/dev" --size $ST_SIZE --journal "$d/j.unacked" \
		--initial stamped --acked-dsync
}

# ---- lw-explore

# A log of three epochs: 2 writes | 5 writes, a FUA and a FLUSH|FUA write
# | 2 writes left unflushed at teardown.
explore_log() {
	"$MKLOG" --log "$TMP/x.log" --size 64K w:0:1 w:1:1 f m:flush-1 \
		w:2:1 w:3:1 w:4:1 w:5:1 w:6:1 w:9:1:U w:0:1:FU m:flush-2 \
		w:7:2 d:1:1 >/dev/null && rm -f "$TMP/x.rep" "$TMP/ref" &&
		truncate -s 64K "$TMP/x.rep"
}

# Every subset of small epochs, none/all/single drops/K random of larger
# ones; the replay file ends at the durable prefix (undo works).
test_lw_explore_states() {
	explore_log || return 1
	expect 0 "19 states at 3 points" -- "$EXPLORE" --log "$TMP/x.log" \
		--replay "$TMP/x.rep" --seed 5 --random 3 --exec true || return 1
	truncate -s 64K "$TMP/ref"
	"$REPLAY" --log "$TMP/x.log" --replay "$TMP/ref" --limit 10 >/dev/null &&
		cmp "$TMP/x.rep" "$TMP/ref"
}

# A check that (wrongly) wants block 5, written in epoch 2, as soon as
# flush-1 was marked fails at the first state of epoch 2 (everything
# dropped); the window shows the FUA write (block 9) as durable.
test_lw_explore_catches() {
	explore_log || return 1
	truncate -s 64K "$TMP/ref"
	"$REPLAY" --log "$TMP/x.log" --replay "$TMP/ref" --limit 8 >/dev/null || return 1
	expect 1 "first failing state is state 5 " -- \
		"$EXPLORE" --log "$TMP/x.log" --replay "$TMP/x.rep" --seed 1 \
		--exec "[ \$LWX_K = 0 ] || cmp -s -i 2560:2560 -n 512 $TMP/x.rep $TMP/ref" || return 1
	grep -q "= 0:9 FUA" "$LOG" && grep -q "dropped: 4 5 6 7 8 10: FAIL" "$LOG"
}

# The same seed gives the same states.
test_lw_explore_seed() {
	explore_log || return 1
	"$EXPLORE" --log "$TMP/x.log" --replay "$TMP/x.rep" --seed 42 \
		--random 5 --list --exec true | grep '^state' > "$TMP/a" &&
	"$EXPLORE" --log "$TMP/x.log" --replay "$TMP/x.rep" --seed 42 \
		--random 5 --list --exec true | grep '^state' > "$TMP/b" &&
	cmp "$TMP/a" "$TMP/b"
}

# The concurrent writer with discards and zeroes checks clean.
test_stamp_threads() {
	truncate -s 4M "$TMP/t.img"
	"$STAMP" fill --dev "$TMP/t.img" --size 4M >/dev/null &&
	"$STAMP" write --dev "$TMP/t.img" --journal "$TMP/t.j" --size 4M \
		--ops 400 --threads 3 --cluster 4K --max-len 16K \
		--discard-pct 15 --zero-pct 5 >/dev/null || return 1
	grep -q ' zero$' "$TMP/t.j" || return 1
	expect 0 "no flushed write lost" -- "$STAMP" check --dev "$TMP/t.img" \
		--journal "$TMP/t.j" --size 4M --initial stamped \
		--upto-flush "$(grep -c '^flush' "$TMP/t.j")"
}

TESTS="
iotest_usage iotest_run_verify iotest_continue iotest_deterministic
iotest_detects_corruption iotest_read_op_detects iotest_discard_old_or_zero
iotest_discard_garbage iotest_init_model_from iotest_cluster_sizes
stamp_usage stamp_fill stamp_write stamp_flush_points stamp_misdirected
stamp_torn stamp_foreign stamp_killed_writer stamp_sigkill
stamp_second_run
stamp_zero_initial stamp_acked_dsync
lw_list lw_replay_all lw_replay_incremental lw_replay_limit
lw_sectorsize_4k lw_errors
lw_explore_states lw_explore_catches lw_explore_seed stamp_threads
"

main() {
	local n=0 failed=0 t out

	for t in "$IOTEST" "$STAMP" "$REPLAY" "$MKLOG" "$EXPLORE"; do
		[ -x "$t" ] || { echo "Bail out! $t not built (run make)"; exit 1; }
	done
	echo "TAP version 13"
	echo "1..$(echo $TESTS | wc -w)"
	for t in $TESTS; do
		n=$((n + 1))
		if out=$("test_$t" 2>&1); then
			echo "ok $n - $t"
		else
			failed=$((failed + 1))
			echo "not ok $n - $t"
			printf '%s\n' "$out" | sed 's/^/# /'
		fi
	done
	echo "# $((n - failed)) passed, $failed failed"
	[ "$failed" -eq 0 ]
}

main
