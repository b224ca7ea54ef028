#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# chainadm commit, intermediate (the top is below the active layer), on
# base <- sn1 <- sn2 <- sn3 <- cur, 16 MiB, 64 KiB clusters; every layer
# stamps its own sectors over clusters of the layers below, whole and
# partial, and zeroes or discards clusters that hold data below.
#
# The six cases of the seed, each on a fresh chain:
#   1. top sn1 base base     2. top sn2 base sn1     3. top sn2 base base
#   4. top sn3 base sn2      5. top sn3 base sn1     6. top sn3 base base
# For each: the device shows the same bytes as the reference file (built
# with dd beside every write) before and after; the table and cur's
# backing chain drop exactly base+1 .. top; those layers are marked
# invalidated and every other layer stays valid and passes chainadm check;
# the layers the commit has no business writing are byte-for-byte
# unchanged (the layer above top: its table and data); the base, assembled
# alone, now shows the disk of the moment top was frozen; the device
# re-created from cur.img shows the same bytes; create refuses an
# invalidated layer.
#
# Then: a commit into a base that a second loaded device also stands on is
# refused, naming that device, unless --force; a commit into a raw base
# (create --layers --raw-base) writes the raw device in place.  The chains
# are built once and their files restored for every case.
. "$(dirname "$0")/../lib.sh"

jobs_begin commit blkdiscard
OTHER=jobs_commit_other
on_exit "$CHAINADM" remove $OTHER

CS=65536
SIZE=$((16 << 20))
LAYERS=(base sn1 sn2 sn3 cur)
ACTIVE=$((${#LAYERS[@]} - 1))
OPS=(
	"d:0:64"
	"d:8:16 p:30:4:8 z:40:2 d:100:8"
	"d:16:12 p:30:32:4 x:48:1 d:104:8 d:40:1"
	"d:20:8 z:16:2 p:110:0:4 d:120:4 z:50:1"
	"d:24:2 p:9:60:4 d:200:4"
)

# fresh : the device over the saved chain, no second device.
fresh() {
	"$CHAINADM" remove $OTHER >/dev/null 2>&1
	rm -f "$work/other.img"
	stack_fresh cur
}

names() {	# names INDEX... : "<layer>.img ..." for table indexes
	local i out=()
	for i in "$@"; do
		out+=("${LAYERS[i]}.img")
	done
	echo "${out[*]}"
}

# run_case N TOP BASE TOP_ARG BASE_ARG : seed case N, layers by index.
run_case() {
	local n=$1 t=$2 b=$3 targ=$4 barg=$5 label i ok kept=() rest=() untouched=()
	local body=
	label="case $n (top ${LAYERS[t]}, base ${LAYERS[b]})"
	fresh || { tap_fail "$label: create the device"; return; }

	for ((i = 0; i <= b; i++)); do kept+=("$i"); done
	for ((i = t + 1; i <= ACTIVE; i++)); do kept+=("$i"); done
	# Not written at all: below the base, and above top + 1 (not active).
	for ((i = 0; i < b; i++)); do untouched+=("$i"); done
	for ((i = t + 2; i < ACTIVE; i++)); do untouched+=("$i"); done
	for i in "${untouched[@]}"; do
		sha256sum "$work/${LAYERS[i]}.img"
	done > "$work/sums"
	# The layer above top gets a new backing link: its header only.
	[ $((t + 1)) -lt $ACTIVE ] && body=$(layer_body_sum "$work/${LAYERS[t + 1]}.img")

	timeout 300 "$CHAINADM" commit $DEV --top "$targ" --base "$barg" --wait \
		> "$work/commit.out" 2>&1
	ok=$?
	sed 's/^/# /' "$work/commit.out"
	tap_check "$label: chainadm commit --top $targ --base $barg --wait succeeds" \
		test $ok = 0
	[ $ok = 0 ] || return
	tap_check "$label: the device shows the same bytes" \
		cmp /dev/mapper/$DEV "$work/model"
	tap_check "$label: the table is now '$(names "${kept[@]}")', no job left" \
		test "$(dev_layer_names $DEV)" = "$(names "${kept[@]}")" -a \
		     "$(job_field $DEV type)" = none
	"$CHAINADM" remove $DEV || { tap_fail "$label: remove"; return; }

	ok=1
	for ((i = 0; i <= ACTIVE; i++)); do
		if [ $i -gt $b ] && [ $i -le $t ]; then
			layer_invalidated "$work/${LAYERS[i]}.img" && continue
		else
			layer_clean "$work/${LAYERS[i]}.img" && continue
		fi
		log "${LAYERS[i]}.img: flags '$(layer_flags "$work/${LAYERS[i]}.img")'"
		ok=0
	done
	tap_check "$label: $(names $(seq $((b + 1)) $t)) invalidated, the others valid" \
		test $ok = 1
	if [ ${#untouched[@]} -gt 0 ] || [ -n "$body" ]; then
		ok=1
		if [ ${#untouched[@]} -gt 0 ]; then
			sha256sum --quiet -c "$work/sums" || ok=0
		fi
		if [ -n "$body" ] && [ "$body" != "$(layer_body_sum "$work/${LAYERS[t + 1]}.img")" ]; then
			log "${LAYERS[t + 1]}.img: table or data changed"
			ok=0
		fi
		tap_check "$label: layers the commit must not write are unchanged" \
			test $ok = 1
	fi

	rest=()
	for ((i = ${#kept[@]} - 1; i >= 0; i--)); do rest+=("${LAYERS[kept[i]]}.img"); done
	tap_check "$label: backing chain of cur.img is '${rest[*]}'" \
		test "$(backing_names "$work/cur.img")" = "${rest[*]}" -a \
		     "$(layer_json "$work/${LAYERS[t + 1]}.img" backing-uuid)" = \
		     "$(layer_json "$work/${LAYERS[b]}.img" uuid)"
	ok=1
	for i in "${kept[@]}"; do
		"$CHAINADM" check "$work/${LAYERS[i]}.img" > "$work/check.out" 2>&1 ||
			{ ok=0; sed 's/^/# /' "$work/check.out"; }
	done
	tap_check "$label: every remaining layer passes chainadm check" test $ok = 1

	# The base now holds everything up to top: its own chain is the disk
	# of the moment top was frozen.
	"$CHAINADM" create $CHK "$work/${LAYERS[b]}.img" >/dev/null &&
	cmp /dev/mapper/$CHK "$work/model.${LAYERS[t]}"
	tap_check "$label: ${LAYERS[b]} alone shows the disk of ${LAYERS[t]}'s moment" \
		test $? = 0
	"$CHAINADM" remove $CHK >/dev/null 2>&1

	"$CHAINADM" create $DEV "$work/cur.img" >/dev/null &&
	cmp /dev/mapper/$DEV "$work/model"
	tap_check "$label: re-created from cur.img, the device shows the same bytes" \
		test $? = 0
	"$CHAINADM" remove $DEV >/dev/null 2>&1

	if "$CHAINADM" create $CHK "$work/${LAYERS[t]}.img" > "$work/create.out" 2>&1; then
		"$CHAINADM" remove $CHK
		tap_fail "$label: create refuses the invalidated ${LAYERS[t]}.img"
	else
		sed 's/^/# /' "$work/create.out"
		tap_ok "$label: create refuses the invalidated ${LAYERS[t]}.img"
	fi
}

stack_build || die "cannot build base <- sn1 <- sn2 <- sn3 <- cur"
tap_ok "the chain base <- sn1 <- sn2 <- sn3 <- cur shows the reference's bytes"

# Layers by path, or virsh-style: name[0] is cur, name[4] is base.
run_case 1 1 0 "$work/sn1.img" "$work/base.img"
run_case 2 2 1 "$work/sn2.img" "$work/sn1.img"
run_case 3 2 0 "$work/sn2.img" "${DEV}[4]"
run_case 4 3 2 "${DEV}[1]" "${DEV}[2]"
run_case 5 3 1 "$work/sn3.img" "$work/sn1.img"
run_case 6 3 0 "$work/sn3.img" "$work/base.img"

# ---- a base shared with a second device (seed Figure 2)
#
# jobs_commit: base <- sn1 <- sn2 <- sn3 <- cur;  jobs_commit_other: base <- other.

label="shared base"
if fresh &&
   "$CHAINADM" format -q --backing "$work/base.img" "$work/other.img" &&
   "$CHAINADM" create $OTHER "$work/other.img" >/dev/null; then
	sha256sum "$work/base.img" > "$work/sums"
	timeout 300 "$CHAINADM" commit $DEV --top "$work/sn1.img" \
		--base "$work/base.img" --wait > "$work/commit.out" 2>&1
	ok=$?
	sed 's/^/# /' "$work/commit.out"
	tap_check "$label: commit into a base another device uses is refused" \
		test $ok != 0
	tap_check "$label: the refusal names the other device" \
		grep -q "$OTHER" "$work/commit.out"
	tap_check "$label: nothing changed: no job, sn1 valid, base unchanged, same bytes" \
		eval 'test "$(job_field $DEV type)" = none &&
		      layer_clean "$work/sn1.img" &&
		      sha256sum --quiet -c "$work/sums" &&
		      cmp /dev/mapper/$DEV "$work/model"'
	timeout 300 "$CHAINADM" commit $DEV --top "$work/sn1.img" \
		--base "$work/base.img" --force --wait > "$work/commit.out" 2>&1
	ok=$?
	sed 's/^/# /' "$work/commit.out"
	tap_check "$label: with --force the commit runs" test $ok = 0
	tap_check "$label: after --force: same bytes, table 'base.img sn2.img sn3.img cur.img'" \
		eval 'cmp /dev/mapper/$DEV "$work/model" &&
		      test "$(dev_layer_names $DEV)" = "base.img sn2.img sn3.img cur.img"'
	"$CHAINADM" remove $DEV
	"$CHAINADM" remove $OTHER
	tap_check "$label: after --force: sn1 invalidated" layer_invalidated "$work/sn1.img"
else
	tap_fail "$label: create the two devices"
fi

# ---- commit into a raw base: raw <- sn1 <- sn2 <- cur, top sn2

label="raw base"
"$CHAINADM" remove $DEV >/dev/null 2>&1
"$CHAINADM" remove $OTHER >/dev/null 2>&1
detach_loops "$work"
rm -f "$work"/*.img "$work"/model*
LAYERS=(base sn1 sn2 cur)
OPS=(
	""
	"d:8:16 p:30:4:8 z:40:2 d:100:8"
	"d:16:12 p:30:32:4 x:48:1 d:104:8 d:40:1"
	"d:24:2 p:9:60:4 d:200:4"
)
read -r -a OPS_SN1 <<< "${OPS[1]}"
truncate -s $SIZE "$work/base.raw" "$work/model"
if stamp_range "$work/base.raw" "$work/model" rawbase 0 $SIZE &&
   "$CHAINADM" format -q --backing "$work/base.raw" --backing-type raw \
	--cluster-size $CS "$work/sn1.img" &&
   "$CHAINADM" create --layers --raw-base $DEV "$work/base.raw" "$work/sn1.img" >/dev/null &&
   write_ops /dev/mapper/$DEV "$work/model" sn1 $CS "${OPS_SN1[@]}" &&
   stack_layers 2; then
	timeout 300 "$CHAINADM" commit $DEV --top "$work/sn2.img" \
		--base "$work/base.raw" --wait > "$work/commit.out" 2>&1
	ok=$?
	sed 's/^/# /' "$work/commit.out"
	tap_check "$label: commit --top sn2 --base base.raw --wait succeeds" test $ok = 0
	tap_check "$label: the device shows the same bytes" \
		cmp /dev/mapper/$DEV "$work/model"
	tap_check "$label: the table is 'chain 2 raw' over base.raw and cur.img" \
		test "$(dmsetup table $DEV | awk '{print $4, $5}')" = "2 raw" -a \
		     "$(dev_layer_names $DEV)" = "base.raw cur.img"
	"$CHAINADM" remove $DEV
	tap_check "$label: base.raw now holds exactly the disk of sn2's moment" \
		cmp "$work/base.raw" "$work/model.sn2"
	tap_check "$label: sn1 and sn2 invalidated, cur valid" \
		eval 'layer_invalidated "$work/sn1.img" && layer_invalidated "$work/sn2.img" &&
		      layer_clean "$work/cur.img"'
	tap_check "$label: cur.img's backing is the raw base.raw" \
		test "$(layer_json "$work/cur.img" backing-type)" = raw -a \
		     "$(basename "$(layer_json "$work/cur.img" backing-filename)")" = base.raw
	"$CHAINADM" create --layers --raw-base $DEV "$work/base.raw" "$work/cur.img" >/dev/null &&
	cmp /dev/mapper/$DEV "$work/model"
	tap_check "$label: re-created with --layers --raw-base, the same bytes" test $? = 0
	"$CHAINADM" remove $DEV >/dev/null 2>&1
	"$CHAINADM" create $DEV "$work/cur.img" >/dev/null &&
	cmp /dev/mapper/$DEV "$work/model"
	tap_check "$label: re-created from cur.img by discovery, the same bytes" test $? = 0
	"$CHAINADM" remove $DEV >/dev/null 2>&1
else
	tap_fail "$label: build raw <- sn1 <- sn2 <- cur"
fi

tap_check "kernel log is clean" kmsg_check
tap_end
