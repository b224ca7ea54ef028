/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Live chain devices, shared by the device verbs and map.
 */
#ifndef CHAINADM_DEVICE_H
#define CHAINADM_DEVICE_H

#include "dm.h"
#include "table.h"

/* The table of dm device name, which must be a chain device. */
int load_chain_device(const char *name, struct dm_target_line *line,
		      struct chain_table *t);

#endif
