#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# The systemd units that assemble /etc/chaintab at boot: make
# install-userspace (make install but the module, which DKMS installs:
# tests/host/dkms.sh; and no module build beside running guests) puts
# them (with chainadm, its man page and completion) under DESTDIR, each
# runs the chainadm installed beside it, and systemd-analyze verify finds
# nothing wrong with them.  The guest has no systemd: what the units run,
# chainadm assemble, is tested there (guest/chaintab, crash_jobs).
. "$(dirname "$0")/host-lib.inc"

plan 4
root=$SCRATCH/root
units="chainadm-assemble.service chainadm-assemble-netdev.service"
run make -s -C "$TOP_DIR" install-userspace DESTDIR="$root" PREFIX=/usr
missing=
for f in usr/sbin/chainadm usr/share/man/man8/chainadm.8 \
	 usr/share/bash-completion/completions/chainadm \
	 etc/systemd/system/chainadm-assemble.service \
	 etc/systemd/system/chainadm-assemble-netdev.service; do
	[ -f "$root/$f" ] || missing="$missing $f"
done
if [ $RC = 0 ] && [ -z "$missing" ]; then
	pass "make install-userspace DESTDIR= installs chainadm, man page, completion and both units"
else
	fail "make install-userspace DESTDIR= installs chainadm, man page, completion and both units" \
		"exit $RC, missing:$missing" "$ERR"
fi
a=$(grep '^ExecStart=' "$root/etc/systemd/system/chainadm-assemble.service")
n=$(grep '^ExecStart=' "$root/etc/systemd/system/chainadm-assemble-netdev.service")
if [ "$a" = "ExecStart=/usr/sbin/chainadm assemble --all" ] &&
   [ "$n" = "ExecStart=/usr/sbin/chainadm assemble --all --netdev" ]; then
	pass "the units run the installed chainadm: assemble --all, and --all --netdev"
else
	fail "the units run the installed chainadm" "$a" "$n"
fi
if grep -q '^After=.*local-fs.target' "$root/etc/systemd/system/chainadm-assemble.service" &&
   grep -q '^After=.*network-online.target' "$root/etc/systemd/system/chainadm-assemble-netdev.service"; then
	pass "local devices wait for local file systems, _netdev ones for the network"
else
	fail "local devices wait for local file systems, _netdev ones for the network"
fi
# verify checks ExecStart's program exists: point it at the one installed.
if ! command -v systemd-analyze >/dev/null; then
	pass "systemd-analyze verify # SKIP no systemd-analyze"
else
	for u in $units; do
		sed "s|/usr/sbin/chainadm|$root/usr/sbin/chainadm|" \
			"$root/etc/systemd/system/$u" > "$SCRATCH/$u"
	done
	run bash -c "cd '$SCRATCH' && systemd-analyze verify --man=no chainadm-assemble.service chainadm-assemble-netdev.service"
	if [ $RC = 0 ] && [ -z "$ERR" ]; then
		pass "systemd-analyze verify: both units are clean"
	else
		fail "systemd-analyze verify: both units are clean" "exit $RC" "$ERR"
	fi
fi
finish
