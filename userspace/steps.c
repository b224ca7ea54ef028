// SPDX-License-Identifier: GPL-2.0-only
/*
 * Header steps of block jobs; see steps.h for the order and why.
 */
#include <string.h>

#include "steps.h"

static struct layer *active(struct stack *s)
{
	return s->open(s, s->n - 1);
}

/* Layer i has uuid (zero for a raw base). */
static int check_uuid(struct stack *s, unsigned int i, const __u8 *uuid,
		      const char *what)
{
	static const __u8 zero[DM_CHAIN_UUID_SIZE];
	char want[UUID_STR_LEN], have[UUID_STR_LEN];
	struct layer *l;

	if (!i && s->raw_base) {
		if (!memcmp(uuid, zero, sizeof(zero)))
			return 0;
		uuid_str(uuid, want);
		errmsg(s->name, "the job record names a chain layer %s as its %s (table index %u), but that is the raw base: not the chain the job ran on; give its layers with create --layers, or end the job with chainadm job --abort",
		       want, what, i);
		return -1;
	}
	l = s->open(s, i);
	if (!l)
		return -1;
	if (!memcmp(uuid, l->info.uuid, DM_CHAIN_UUID_SIZE))
		return 0;
	uuid_str(uuid, want);
	uuid_str(l->info.uuid, have);
	errmsg(s->name, "the job record names layer %s as its %s (table index %u), but %s there is %s: not the chain the job ran on; give its layers with create --layers, or end the job with chainadm job --abort",
	       want, what, i, l->path, have);
	return -1;
}

int steps_check(struct stack *s, const struct job_record *rec)
{
	unsigned int top = s->n - 1;
	bool ok;

	switch (rec->type) {
	case DM_CHAIN_JOB_STREAM:
		ok = rec->base == DM_CHAIN_JOB_NO_LAYER || rec->base < top;
		break;
	case DM_CHAIN_JOB_COMMIT:
		ok = rec->top < top && rec->base < rec->top;
		break;
	case DM_CHAIN_JOB_ACTIVE_COMMIT:
		ok = rec->top == top && rec->base < top;
		break;
	default:
		return 0;	/* a mirror's layers are in the table */
	}
	if (!ok) {
		errmsg(s->name, "the %s job record names top %u and base %d, which do not fit a chain of %u layers: not the chain the job ran on; give its layers with create --layers, or end the job with chainadm job --abort",
		       job_type_name(rec->type), rec->top,
		       rec->base == DM_CHAIN_JOB_NO_LAYER ? -1 : (int)rec->base,
		       s->n);
		return -1;
	}
	if (rec->type != DM_CHAIN_JOB_STREAM &&
	    check_uuid(s, rec->top, rec->top_uuid, "top"))
		return -1;
	if (rec->base != DM_CHAIN_JOB_NO_LAYER &&
	    check_uuid(s, rec->base, rec->base_uuid, "base"))
		return -1;
	return 0;
}

/* Make info name layer idx (NO_LAYER: nothing) as its backing layer. */
static int link_to(struct stack *s, unsigned int idx,
		   struct dm_chain_layer_info *info)
{
	struct layer *below;
	char hint[DM_CHAIN_HINT_SIZE + 2];

	memset(info->backing_uuid, 0, DM_CHAIN_UUID_SIZE);
	memset(info->backing_hint, 0, sizeof(info->backing_hint));
	info->hint_len = 0;
	if (idx == DM_CHAIN_JOB_NO_LAYER) {
		info->backing_type = DM_CHAIN_BACKING_NONE;
		return 0;
	}
	if (!idx && s->raw_base) {
		info->backing_type = DM_CHAIN_BACKING_RAW;
	} else {
		below = s->open(s, idx);
		if (!below)
			return -1;
		info->backing_type = DM_CHAIN_BACKING_CHAIN;
		memcpy(info->backing_uuid, below->info.uuid, DM_CHAIN_UUID_SIZE);
	}
	if (s->hint(s, idx, hint, sizeof(hint)))
		return -1;
	if (strlen(hint) > DM_CHAIN_HINT_SIZE) {
		errmsg(hint, "path is longer than %u bytes: cannot be stored as a backing hint",
		       DM_CHAIN_HINT_SIZE);
		return -1;
	}
	info->hint_len = strlen(hint);
	memcpy(info->backing_hint, hint, info->hint_len);
	return 0;
}

static int write_linked(struct stack *s, unsigned int i, unsigned int base,
			bool clear_record)
{
	struct layer *l = s->open(s, i);
	struct dm_chain_layer_info info;

	if (!l)
		return -1;
	info = l->info;
	if (link_to(s, base, &info))
		return -1;
	if (clear_record)
		memset(info.job, 0, sizeof(info.job));
	return txn_write(s->txn, l, &info);
}

static int invalidate(struct stack *s, unsigned int from, unsigned int to)
{
	struct layer *l;
	unsigned int i;

	for (i = from; i <= to; i++) {
		l = s->open(s, i);
		if (!l || txn_set_flag(s->txn, l, DM_CHAIN_FLAG_INVALIDATED))
			return -1;
	}
	return 0;
}

int steps_clear_record(struct stack *s)
{
	struct layer *l = active(s);
	struct dm_chain_layer_info info;
	static const __u8 zero[DM_CHAIN_JOB_SIZE];

	if (!l)
		return -1;
	if (!memcmp(l->info.job, zero, sizeof(zero)))
		return 0;
	info = l->info;
	memset(info.job, 0, sizeof(info.job));
	return txn_write(s->txn, l, &info);
}

int steps_complete(struct stack *s, const struct job_record *rec)
{
	unsigned int top = s->n - 1;

	if (rec->type == DM_CHAIN_JOB_STREAM)
		return write_linked(s, top, rec->base, true);
	if (invalidate(s, rec->base + 1, rec->top) ||
	    write_linked(s, rec->top + 1, rec->base, rec->top + 1 == top))
		return -1;
	return steps_clear_record(s);
}

int steps_pivot_intent(struct stack *s, struct job_record *rec)
{
	struct layer *l = active(s);
	struct dm_chain_layer_info info;

	if (!l)
		return -1;
	rec->phase = DM_CHAIN_PHASE_PIVOT;
	info = l->info;
	job_record_put(rec, &info);
	return txn_write(s->txn, l, &info);
}

int steps_pivot_commit(struct stack *s, const struct job_record *rec)
{
	return invalidate(s, rec->base + 1, s->n - 1);
}
