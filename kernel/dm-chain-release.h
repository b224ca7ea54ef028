/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The dm-chain release, one string for the module (MODULE_VERSION, shown
 * in /sys/module/dm_chain/version) and chainadm (chainadm --version).
 * dkms.conf's PACKAGE_VERSION says the same: tests/host/version.sh checks.
 * The target's own version (dm_chain_target.version) counts table and
 * status changes; this one counts releases.
 */
#ifndef DM_CHAIN_RELEASE_H
#define DM_CHAIN_RELEASE_H

#define DM_CHAIN_RELEASE "0.1"

#endif
