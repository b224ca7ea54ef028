#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# tests/soak/run-soak.sh - the soak (make soak): one chain device in real
# use for MINUTES, with a hard power-off every few minutes.
#
#   tests/soak/run-soak.sh [-k KVER] [-m MINUTES] [-o DIR]
#
# Boots guests one after the other on the same virtio disk (a sparse host
# file in DIR).  Each boot assembles the chain as the last one left it
# (chainadm recover), verifies what was flushed before the power cut
# (fio halves by sha256, every fsync'ed file of the ext4 tree, e2fsck,
# chainadm check on every layer), finishes a job the cut interrupted,
# then runs fio, the file tree and the job loop until the guest prints
# KILL-NOW at a random moment, 90-240 s in, and is killed (QEMU SIGKILL).
# The last boot runs to the end instead, stops cleanly, verifies
# everything and checks every layer.  tests/soak/soak.guest has the
# details.  Any verify error, kernel warning or failed check fails the
# soak at once.  The summary is printed and kept in DIR/summary.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

kver=${KVER:-6.1}
minutes=${SOAK_MINUTES:-60}
dir=
while [ $# -gt 0 ]; do
	case $1 in
	-k) kver=$2; shift 2 ;;
	-m) minutes=$2; shift 2 ;;
	-o) dir=$2; shift 2 ;;
	-h|--help) sed -n '3,/^set/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
case $minutes in
''|*[!0-9]*) echo "run-soak.sh: SOAK_MINUTES must be a whole number of minutes, not '$minutes'" >&2; exit 2 ;;
esac
[ "$minutes" -ge 10 ] || { echo "run-soak.sh: SOAK_MINUTES must be at least 10" >&2; exit 2; }

rel=$("$top/tools/kver" "$kver") || exit 2
if [ -z "$dir" ]; then
	mkdir -p "$top/build/soak"
	dir=$(mktemp -d "$top/build/soak/$(date +%Y%m%d-%H%M)-$rel.XXXX")
fi
mkdir -p "$dir"
dir=$(readlink -f "$dir")
# 12 slices of 330 MiB (soak.guest): sparse, it fills as layers are used.
truncate -s $((12 * 330))M "$dir/disk"

start=$(date +%s)
end=$((start + minutes * 60))
commit=$(git -C "$top" describe --always --dirty 2>/dev/null)
final_secs=0
boots=0 cuts=0
echo "soak: $rel for $minutes min, $commit, in $dir"
while :; do
	boots=$((boots + 1))
	left=$((end - $(date +%s)))
	# The last boot: about 7 minutes from the end, it runs what is left
	# (at least a minute) and stops cleanly.
	if [ $left -le 420 ]; then
		final_secs=$((left > 240 ? left - 180 : 60))
		echo "soak: boot $boots (final, $final_secs s of workload)"
		"$top/tools/guest-run" -q -k "$kver" -t 1800 --disk "$dir/disk" --outdir "$dir" \
			--logdir "$dir/boot-$boots" \
			-- bash "$here/soak.guest" final "$dir" "$final_secs" > "$dir/boot-$boots.log" 2>&1
		rc=$?
	else
		echo "soak: boot $boots ($((left / 60)) min left)"
		"$top/tools/guest-run" -q -k "$kver" -t 1200 --disk "$dir/disk" --outdir "$dir" \
			--logdir "$dir/boot-$boots" --kill-on KILL-NOW \
			-- bash "$here/soak.guest" boot "$dir" > "$dir/boot-$boots.log" 2>&1
		rc=$?
		grep -q 'guest-run: power cut' "$dir/boot-$boots.log" && cuts=$((cuts + 1))
	fi
	grep -E '^soak: (assembled|job resumed|op |boot )' "$dir/boot-$boots/output" 2>/dev/null |
		sed 's/^/  /' | head -n 40
	if [ $rc != 0 ] || [ -s "$dir/failures" ]; then
		echo "soak: FAILED in boot $boots (guest-run exit $rc); log $dir/boot-$boots.log"
		cat "$dir/failures" 2>/dev/null
		tail -n 40 "$dir/boot-$boots.log"
		exit 1
	fi
	[ $final_secs = 0 ] || break
done

# The summary: every counter the guests kept, summed.
sum() { cat "$dir"/stats.$1 2>/dev/null | awk -v k="$2" '$1 == k { s += $2 } END { print s + 0 }'; }
mib() { echo $(( $1 >> 20 )); }
{
	echo "dm-chain soak on $rel, $minutes min ($(( ($(date +%s) - start) / 60 )) min wall), commit $commit"
	echo "  boots:                 $boots ($cuts ended by a hard power-off, 1 clean stop)"
	echo "  jobs resumed after a power cut: $(sum boot jobs_resumed) ($(sum boot jobs_unpaused) of them paused or failed at the cut: --resume), pivots rolled forward by recover: $(sum boot pivots_rolled_forward)"
	echo "  job operations:        snapshot $(sum job op_snapshot), pull $(sum job op_pull), commit $(sum job op_commit), active commit+pivot $(sum job op_active),"
	echo "                         copy+pivot $(sum job op_copy) (shallow $(sum job op_copy_shallow), onto a reused layer $(sum job op_copy_reuse)), copy+finish $(sum job op_finish) ($(sum job copy_finish_verified) compared)"
	echo "  job controls:          bandwidth changes $(sum job bandwidth_changes), pause/resume $(sum job pauses)"
	echo "  fio:                   $(sum fio rounds) rounds, $(mib "$(sum fio written_bytes)") MiB written and $(mib "$(sum fio verified_bytes)") MiB verified (crc32c), $(mib "$(sum fio discarded_bytes)") MiB discarded or zeroed and read back"
	echo "  ext4 tree:             $(sum fs created) files created, $(sum fs replaced) replaced, $(sum fs deleted) deleted, $(mib "$(sum fs written_bytes)") MiB written"
	echo "  verified after power cuts: $(mib "$(sum verify verified_bytes)") MiB ($(sum verify verified_files) file checks), e2fsck clean $(sum verify fsck_clean) times, chainadm check clean on $(sum verify layers_checked) layers"
	echo "  errors: 0 verify errors, 0 kernel warnings, 0 failed checks"
} | tee "$dir/summary"
rm -f "$dir/disk"
