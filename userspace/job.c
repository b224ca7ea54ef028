// SPDX-License-Identifier: GPL-2.0-only
/*
 * Block jobs: record, status fields, waiting; see job.h.
 *
 * Waiting is event driven: read the device's event counter, then the
 * status, and if the job has not arrived, block in DM_DEVICE_WAITEVENT
 * until the counter moves past the value read.  An event raised between
 * the two reads moves the counter, so the wait returns at once and no
 * phase change is missed.
 */
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "job.h"

static const char *const type_names[] = {
	[DM_CHAIN_JOB_STREAM] = "stream",
	[DM_CHAIN_JOB_COMMIT] = "commit",
	[DM_CHAIN_JOB_ACTIVE_COMMIT] = "active-commit",
	[DM_CHAIN_JOB_MIRROR] = "mirror",
};

static const char *const phase_names[] = {
	[DM_CHAIN_PHASE_RUNNING] = "running",
	[DM_CHAIN_PHASE_READY] = "ready",
	[DM_CHAIN_PHASE_COMPLETED] = "completed",
	[DM_CHAIN_PHASE_PIVOT] = "pivot",
	[DM_CHAIN_PHASE_FAILED] = "failed",
};

#define NAMES(a)	(sizeof(a) / sizeof((a)[0]))

const char *job_type_name(unsigned int type)
{
	return type < NAMES(type_names) && type_names[type] ?
	       type_names[type] : "none";
}

const char *job_phase_name(unsigned int phase)
{
	return phase < NAMES(phase_names) && phase_names[phase] ?
	       phase_names[phase] : "-";
}

int job_record_get(const struct dm_chain_layer_info *info, const char *path,
		   struct job_record *rec)
{
	const struct dm_chain_job_record *raw = (const void *)info->job;

	memset(rec, 0, sizeof(*rec));
	/*
	 * Any other magic means no job (dm-chain-format.rst), as it does to
	 * the kernel: refusing it would leave a layer chainadm cannot
	 * assemble while the kernel runs it without a job.
	 */
	if (le32_to_cpu(raw->magic) != DM_CHAIN_JOB_MAGIC)
		return 0;
	if (raw->type < DM_CHAIN_JOB_STREAM || raw->type > DM_CHAIN_JOB_MIRROR ||
	    raw->phase < DM_CHAIN_PHASE_RUNNING ||
	    raw->phase > DM_CHAIN_PHASE_FAILED ||
	    raw->hint_len > DM_CHAIN_JOB_HINT_SIZE) {
		errmsg(path, "invalid job record (magic 0x%08x, type %u, phase %u): written by a newer dm-chain?",
		       le32_to_cpu(raw->magic), raw->type, raw->phase);
		return -1;
	}
	rec->present = true;
	rec->type = raw->type;
	rec->phase = raw->phase;
	rec->flags = raw->flags;
	rec->top = le32_to_cpu(raw->top);
	rec->base = le32_to_cpu(raw->base);
	rec->cursor = le64_to_cpu(raw->cursor);
	rec->bandwidth = le64_to_cpu(raw->bandwidth);
	rec->done = le64_to_cpu(raw->bytes_done);
	rec->total = le64_to_cpu(raw->bytes_total);
	memcpy(rec->top_uuid, raw->top_uuid, DM_CHAIN_UUID_SIZE);
	memcpy(rec->base_uuid, raw->base_uuid, DM_CHAIN_UUID_SIZE);
	memcpy(rec->dest_uuid, raw->dest_uuid, DM_CHAIN_UUID_SIZE);
	memcpy(rec->dest_hint, raw->dest_hint, raw->hint_len);
	rec->dest_hint[raw->hint_len] = '\0';
	return 0;
}

void job_record_put(const struct job_record *rec,
		    struct dm_chain_layer_info *info)
{
	struct dm_chain_job_record *raw = (void *)info->job;
	size_t hint_len = strnlen(rec->dest_hint, DM_CHAIN_JOB_HINT_SIZE);

	memset(info->job, 0, sizeof(info->job));
	if (!rec->present)
		return;
	raw->magic = cpu_to_le32(DM_CHAIN_JOB_MAGIC);
	raw->type = rec->type;
	raw->phase = rec->phase;
	raw->flags = rec->flags;
	raw->hint_len = hint_len;
	raw->top = cpu_to_le32(rec->top);
	raw->base = cpu_to_le32(rec->base);
	raw->cursor = cpu_to_le64(rec->cursor);
	raw->bandwidth = cpu_to_le64(rec->bandwidth);
	raw->bytes_done = cpu_to_le64(rec->done);
	raw->bytes_total = cpu_to_le64(rec->total);
	memcpy(raw->top_uuid, rec->top_uuid, DM_CHAIN_UUID_SIZE);
	memcpy(raw->base_uuid, rec->base_uuid, DM_CHAIN_UUID_SIZE);
	memcpy(raw->dest_uuid, rec->dest_uuid, DM_CHAIN_UUID_SIZE);
	memcpy(raw->dest_hint, rec->dest_hint, hint_len);
}

const char *job_label(const char *type)
{
	if (!strcmp(type, "stream"))
		return "Block Pull";
	if (!strcmp(type, "mirror"))
		return "Block Copy";
	return "Block Commit";
}

/* A cancelled job lingers in the status until the table changes. */
bool job_is_active(const struct chain_job_status *js)
{
	return js->supported && strcmp(js->type, "none") &&
	       strcmp(js->phase, "cancelled");
}

bool job_has_ready(const char *type)
{
	return !strcmp(type, "active-commit") || !strcmp(type, "mirror");
}

unsigned int job_percent(const struct chain_job_status *js)
{
	if (!js->total)
		return !strcmp(js->phase, "completed") ||
		       !strcmp(js->phase, "ready") ? 100 : 0;
	if (js->done >= js->total)
		return 100;
	/* 99 at most until done: "100 %" means finished. */
	return (unsigned int)((unsigned __int128)js->done * 100 / js->total);
}

static void print_rate(const char *prefix, const char *key, uint64_t v,
		       const char *zero)
{
	char s[SIZE_STR_LEN];

	if (!v && zero)
		printf("%s%s: %s\n", prefix, key, zero);
	else
		printf("%s%s: %s/s (%llu bytes/s)\n", prefix, key,
		       size_str(v, s, sizeof(s)), (unsigned long long)v);
}

void job_print_human(const struct chain_job_status *js, const char *prefix)
{
	char done[SIZE_STR_LEN], total[SIZE_STR_LEN];

	printf("%stype: %s\n", prefix, js->type);
	if (!strcmp(js->type, "none"))
		return;
	printf("%sphase: %s\n%sprogress: %u %% (%s of %s)\n", prefix, js->phase,
	       prefix, job_percent(js), size_str(js->done, done, sizeof(done)),
	       size_str(js->total, total, sizeof(total)));
	print_rate(prefix, "rate", js->rate, NULL);
	print_rate(prefix, "bandwidth", js->bandwidth, "unlimited");
	printf("%serrors: %llu\n", prefix, (unsigned long long)js->errors);
	if (js->last_error)
		printf("%slast error: %d (%s)\n", prefix, js->last_error,
		       strerror(js->last_error));
	else
		printf("%slast error: -\n", prefix);
}

void job_cells(struct out_table *t, struct libscols_line *ln,
	       const struct chain_job_status *js)
{
	out_u64(t, ln, "DONE", js->done);
	out_u64(t, ln, "TOTAL", js->total);
	out_u64(t, ln, "RATE", js->rate);
	out_u64(t, ln, "BANDWIDTH", js->bandwidth);
	out_u64(t, ln, "ERRORS", js->errors);
	if (js->last_error) {
		out_u64(t, ln, "LAST-ERROR", js->last_error);
		out_str(t, ln, "LAST-ERROR-TEXT", strerror(js->last_error));
	}
}

static int read_job_status(const char *name, struct chain_job_status *js)
{
	struct dm_target_line line;
	struct chain_status s;
	int r;

	if (dm_op_status(name, &line))
		return -1;
	r = line.type && !strcmp(line.type, CHAIN_TARGET) ? 0 : -1;
	if (r)
		errmsg(name, "is no longer a chain device (target %s)",
		       line.type ? line.type : "none");
	else
		r = status_parse(name, line.params, &s);
	dm_target_line_free(&line);
	if (!r)
		*js = s.job;
	return r;
}

/* Why the wait ended. */
enum wait_end {
	WAIT_ON,		/* not yet */
	WAIT_ARRIVED,		/* completed, or ready */
	WAIT_FAILED,
	WAIT_CANCELLED,
	WAIT_VANISHED,		/* no job of that type any more */
	WAIT_NO_DEVICE,
	WAIT_ERROR,		/* a dm operation failed, reported */
};

static enum wait_end arrived(const char *type, const struct chain_job_status *js)
{
	if (js->supported && !strcmp(js->type, type) &&
	    !strcmp(js->phase, "cancelled"))
		return WAIT_CANCELLED;
	if (!job_is_active(js) || strcmp(js->type, type))
		return WAIT_VANISHED;
	if (!strcmp(js->phase, "failed"))
		return WAIT_FAILED;
	if (!strcmp(js->phase, "completed") ||
	    (job_has_ready(type) && !strcmp(js->phase, "ready")))
		return WAIT_ARRIVED;
	return WAIT_ON;
}

/* After the progress line is ended: say why, return the exit code. */
static int report(const char *name, const char *type,
		  const struct chain_job_status *js, enum wait_end end)
{
	switch (end) {
	case WAIT_ARRIVED:
		return EXIT_OK;
	case WAIT_FAILED:
		errmsg(name, "the %s job failed: %llu copy error%s, last error %d (%s): retry with 'chainadm job %s --resume' or end it with 'chainadm job %s --abort'",
		       type, (unsigned long long)js->errors,
		       js->errors == 1 ? "" : "s", js->last_error,
		       js->last_error ? strerror(js->last_error) : "none",
		       name, name);
		return EXIT_JOB_FAILED;
	case WAIT_CANCELLED:
		errmsg(name, "the %s job was cancelled by someone else", type);
		return EXIT_JOB_GONE;
	case WAIT_VANISHED:
		errmsg(name, "the %s job is gone: cancelled or finished by someone else, or the table was replaced: see chainadm status %s",
		       type, name);
		return EXIT_JOB_GONE;
	case WAIT_NO_DEVICE:
		errmsg(name, "the device disappeared while waiting for its %s job",
		       type);
		return EXIT_JOB_GONE;
	default:
		return EXIT_FAIL;
	}
}

static enum wait_end probe(const char *name, struct dm_info *info)
{
	if (dm_op_probe(name, info))
		return WAIT_ERROR;
	return info->exists ? WAIT_ON : WAIT_NO_DEVICE;
}

int job_wait(const char *name, FILE *progress, struct chain_job_status *js)
{
	const char *label = job_label(js->type);
	char type[sizeof(js->type)];
	unsigned int shown = ~0u;
	bool paused_noted = false;
	enum wait_end end;
	struct dm_info info;

	snprintf(type, sizeof(type), "%s", js->type);
	for (;;) {
		end = probe(name, &info);
		if (end != WAIT_ON)
			break;
		if (read_job_status(name, js)) {
			end = WAIT_ERROR;
			break;
		}
		if (progress && job_is_active(js) && job_percent(js) != shown) {
			shown = job_percent(js);
			fprintf(progress, "\r%s: [%3u %%]", label, shown);
			fflush(progress);
		}
		end = arrived(type, js);
		if (end != WAIT_ON)
			break;
		if (!paused_noted && !strcmp(js->phase, "paused")) {
			if (progress)
				fputc('\n', progress);
			warnmsg(name, "the job is paused: waiting until 'chainadm job %s --resume'",
				name);
			paused_noted = true;
			shown = ~0u;
		}
		/* Fails when the device goes away under the wait. */
		if (dm_op_wait_event(name, info.event_nr)) {
			end = probe(name, &info);
			if (end == WAIT_ON)
				end = WAIT_ERROR;
			break;
		}
	}
	if (progress && shown != ~0u)
		fputc('\n', progress);
	return report(name, type, js, end);
}
