// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_job: the job record (struct dm_chain_job_record, the 256-byte job
 * field of the active layer's header) on its way through the code both
 * sides share and through chainadm:
 *   - carried by dm_chain_header_pack() and dm_chain_header_read() (the
 *     kernel's dm_chain_get_job() hands these bytes to the job code);
 *   - decoded by chainadm's job_record_get(), encoded by job_record_put(),
 *     named by job_type_name() and job_phase_name();
 *   - checked against a chain by steps_check(), what create and recover
 *     do before they write any header for the job.
 *
 * Input: bytes 0..255 the record (cut or zero-padded), byte 256 the
 * number of layers of the chain for steps_check() (1..255), byte 257
 * bit 0: the bottom layer is raw.  Layer i of that chain has the UUID
 * c3 <i> 00 ... 00 (bytes), a raw base none.
 *
 * Besides no crash and no sanitizer report:
 *   - the header code carries the record bit for bit;
 *   - job_record_get() takes a record as dm-chain-format.rst says: a
 *     magic other than "JOB1" means no job; with it, a type, phase or
 *     hint length out of range is refused; what it takes, put and get
 *     again gives back;
 *   - steps_check() accepts only indexes within the chain that fit the
 *     job's type and name the layers there, and opens no layer past the
 *     chain's top.
 */
#include "../../userspace/steps.h"
#include "fuzz.h"

#define INPUT_LEN	(DM_CHAIN_JOB_SIZE + 2)

const struct verb *current_verb;

static struct layer layers[DM_CHAIN_MAX_LAYERS];

static void layer_uuid(unsigned int i, __u8 *uuid)
{
	memset(uuid, 0, DM_CHAIN_UUID_SIZE);
	uuid[0] = 0xc3;
	uuid[1] = i;
}

static struct layer *stack_open(struct stack *s, unsigned int i)
{
	FUZZ_ASSERT(i < s->n, "layer %u of a chain of %u opened", i, s->n);
	FUZZ_ASSERT(i || !s->raw_base, "the raw base opened as a chain layer");
	return &layers[i];
}

static int stack_hint(struct stack *s, unsigned int i, char *buf, size_t len)
{
	(void)s;
	snprintf(buf, len, "/dev/fuzz%u", i);
	return 0;
}

/* The record through both header slots and dm_chain_header_read(). */
static void carry(const __u8 *rec, struct dm_chain_layer_info *info)
{
	static __u8 blocks[DM_CHAIN_TABLE_OFFSET];
	__u64 dev_size;
	char err[256];
	int r, s;

	memset(info, 0, sizeof(*info));
	r = dm_chain_geometry(64 << 10, 4096, UINT64_MAX, info, err,
			      sizeof(err));
	FUZZ_ASSERT(!r, "geometry: %s", err);
	dev_size = info->data_offset;
	memset(info->uuid, 0x3c, DM_CHAIN_UUID_SIZE);
	memcpy(info->job, rec, DM_CHAIN_JOB_SIZE);
	for (s = 0; s < 2; s++) {
		info->generation = s;
		dm_chain_header_pack(info, blocks + s * DM_CHAIN_BLOCK_SIZE);
	}
	r = dm_chain_header_read(blocks, dev_size, info, err, sizeof(err));
	FUZZ_ASSERT(!r && info->slot == 1, "header read: %d %s", r, err);
	FUZZ_ASSERT(!memcmp(info->job, rec, DM_CHAIN_JOB_SIZE),
		    "the header code changed the job record");
}

/* What dm-chain-format.rst and chainadm's rules accept. */
static int model_get(const struct dm_chain_job_record *raw)
{
	if (le32_to_cpu(raw->magic) != DM_CHAIN_JOB_MAGIC)
		return 0;
	if (raw->type < DM_CHAIN_JOB_STREAM || raw->type > DM_CHAIN_JOB_MIRROR ||
	    raw->phase < DM_CHAIN_PHASE_RUNNING ||
	    raw->phase > DM_CHAIN_PHASE_FAILED ||
	    raw->hint_len > DM_CHAIN_JOB_HINT_SIZE)
		return -1;
	return 1;
}

static void check_same(const struct job_record *a, const struct job_record *b)
{
	FUZZ_ASSERT(a->present == b->present && a->type == b->type &&
		    a->phase == b->phase && a->flags == b->flags &&
		    a->top == b->top && a->base == b->base &&
		    a->cursor == b->cursor && a->bandwidth == b->bandwidth &&
		    a->done == b->done && a->total == b->total &&
		    !memcmp(a->top_uuid, b->top_uuid, DM_CHAIN_UUID_SIZE) &&
		    !memcmp(a->base_uuid, b->base_uuid, DM_CHAIN_UUID_SIZE) &&
		    !memcmp(a->dest_uuid, b->dest_uuid, DM_CHAIN_UUID_SIZE) &&
		    !strcmp(a->dest_hint, b->dest_hint),
		    "job_record_get(job_record_put(record)) differs");
}

/* steps_check() against a chain of n layers, the bottom one raw or not. */
static void check_steps(const struct job_record *rec, unsigned int n,
			bool raw_base)
{
	struct stack s = {
		.n = n, .raw_base = raw_base, .name = "fuzz",
		.open = stack_open, .hint = stack_hint,
	};
	__u8 uuid[DM_CHAIN_UUID_SIZE];
	unsigned int top = n - 1, i;
	bool fits;

	for (i = 0; i < n; i++)
		layer_uuid(i, layers[i].info.uuid);
	if (steps_check(&s, rec))
		return;
	switch (rec->type) {
	case DM_CHAIN_JOB_STREAM:
		fits = rec->base == DM_CHAIN_JOB_NO_LAYER || rec->base < top;
		break;
	case DM_CHAIN_JOB_COMMIT:
		fits = rec->base < rec->top && rec->top < top;
		break;
	case DM_CHAIN_JOB_ACTIVE_COMMIT:
		fits = rec->base < top && rec->top == top;
		break;
	default:
		return;		/* a mirror's layers are in the table */
	}
	FUZZ_ASSERT(fits, "%s record top %u base %u accepted for %u layers",
		    job_type_name(rec->type), rec->top, rec->base, n);
	if (rec->type != DM_CHAIN_JOB_STREAM) {
		layer_uuid(rec->top, uuid);
		FUZZ_ASSERT(!memcmp(uuid, rec->top_uuid, DM_CHAIN_UUID_SIZE),
			    "top UUID accepted but not layer %u's", rec->top);
	}
	if (rec->base == DM_CHAIN_JOB_NO_LAYER)
		return;
	if (!rec->base && raw_base)
		memset(uuid, 0, sizeof(uuid));
	else
		layer_uuid(rec->base, uuid);
	FUZZ_ASSERT(!memcmp(uuid, rec->base_uuid, DM_CHAIN_UUID_SIZE),
		    "base UUID accepted but not layer %u's", rec->base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static __u8 in[INPUT_LEN];
	const struct dm_chain_job_record *raw = (const void *)in;
	struct dm_chain_layer_info info, again;
	struct job_record rec, rec2;
	int r, want;

	memset(in, 0, sizeof(in));
	memcpy(in, data, size < sizeof(in) ? size : sizeof(in));

	FUZZ_ASSERT(*job_type_name(raw->type) && *job_phase_name(raw->phase),
		    "no name for type %u phase %u", raw->type, raw->phase);
	carry(in, &info);
	r = job_record_get(&info, "fuzz", &rec);
	want = model_get(raw);
	FUZZ_ASSERT(r == (want < 0 ? -1 : 0) && rec.present == (want > 0),
		    "record magic 0x%08x type %u phase %u hint %u: returned %d, present %d; want %d",
		    le32_to_cpu(raw->magic), raw->type, raw->phase,
		    raw->hint_len, r, rec.present, want);
	if (!rec.present)
		return 0;
	FUZZ_ASSERT(strlen(rec.dest_hint) <= raw->hint_len,
		    "destination hint longer than its length");

	again = info;
	job_record_put(&rec, &again);
	FUZZ_ASSERT(!job_record_get(&again, "fuzz", &rec2),
		    "job_record_get() refuses what job_record_put() wrote");
	check_same(&rec, &rec2);

	check_steps(&rec, 1 + in[DM_CHAIN_JOB_SIZE] % DM_CHAIN_MAX_LAYERS,
		    in[DM_CHAIN_JOB_SIZE + 1] & 1);
	return 0;
}
