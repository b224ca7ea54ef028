// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-hold: a test-only target that maps one device linearly and holds
 * chosen bios in flight until a message lets them go.
 *
 * Races in a stacked target (a write remapped to a host cluster that a
 * discard frees meanwhile, a read of a cluster that is reused before the
 * read lands) depend on one bio staying in flight while other I/O goes
 * on.  Placed under the target under test, dm-hold keeps exactly the bio
 * a test names in flight for as long as the test wants, so such a race
 * happens every time instead of once in a thousand runs.  It also fails a
 * counted number of chosen bios: a fault that heals by itself after
 * exactly N errors, whatever the timing (a block job's retries must
 * outlast it).  Nothing is written anywhere but the underlying device;
 * not for production use.
 *
 * Table:
 *
 *   hold <dev path> <offset>
 *
 *   <offset> is in 512-byte sectors; the target maps its sector s to
 *   sector <offset> + s of <dev path>, like dm-linear.
 *
 * Messages:
 *
 *   arm <sector> <read|write|discard|write_zeroes> [<count>]
 *	Hold the next <count> (default 1) bios of that operation whose range
 *	covers <sector> (512-byte sectors of this target).  Replaces any
 *	earlier arm.
 *   disarm
 *	Hold nothing more; bios already held stay held.
 *   release
 *	Submit every held bio, oldest first.
 *   delay <percent> <max ms>
 *	Hold that percentage of the bios that carry data (any operation),
 *	chosen at random, each for a random time of up to <max ms>, then
 *	submit it: bios complete out of order, as on a disk with a deep
 *	queue, so the target above sees I/O stay in flight while later I/O
 *	completes.  "delay 0 0" stops it.
 *   fail <sector> <#sectors> <read|write> <count>
 *	Complete the next <count> bios of that operation that overlap the
 *	<#sectors> sectors from <sector> with an I/O error (BLK_STS_IOERR)
 *	instead of mapping them.  With one sector, <count> failed bios are
 *	<count> failed requests of the target above, however it splits its
 *	I/O (only one piece of a request covers a given sector).  Replaces
 *	any earlier fail rule.  A bio the rule takes is failed, not held or
 *	delayed.
 *   heal
 *	Fail nothing more.
 *
 * Status (INFO):
 *
 *   <#held> <#held since the table was loaded> <armed>
 *   <#delayed> <#delayed since the table was loaded> <delay>
 *   <#failed since the table was loaded> <failing>
 *
 *   <armed> is "-" or "<sector>:<op>:<count left>", <failing> "-" or
 *   "<sector>+<#sectors>:<op>:<count left>";
 *   <delay> is "-" or "<percent>:<max ms>".
 *
 * A suspend waits for every bio in flight, so presuspend disarms, stops
 * delaying and submits whatever is held or delayed: a suspend or a
 * removal never hangs on a bio the test forgot to release.  A fail rule
 * stays across a suspend (it holds nothing back).
 */
#include <linux/bio.h>
#include <linux/device-mapper.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#define DM_MSG_PREFIX "hold"

struct hold_c {
	struct dm_dev *dev;
	sector_t start;		/* in 512-byte sectors of dev */

	spinlock_t lock;	/* protects everything below */
	struct bio_list held;	/* remapped, waiting for "release" */
	unsigned int nr_held;
	unsigned long long nr_held_total;
	sector_t arm_sector;	/* in 512-byte sectors of the target */
	enum req_op arm_op;
	unsigned int arm_count;	/* 0: not armed */
	struct bio_list delayed;	/* remapped, each due at hold_bio.due */
	unsigned int nr_delayed;
	unsigned long long nr_delayed_total;
	unsigned int delay_pct;	/* 0: no delays */
	unsigned int delay_ms;
	sector_t fail_sector;	/* in 512-byte sectors of the target */
	sector_t fail_len;	/* in 512-byte sectors, at least 1 */
	enum req_op fail_op;
	unsigned int fail_count;	/* 0: fail nothing */
	unsigned long long nr_failed_total;

	struct workqueue_struct *wq;
	struct delayed_work delay_work;	/* submits delayed bios when due */
};

/* Per-bio data. */
struct hold_bio {
	unsigned long due;	/* in jiffies, for a delayed bio */
};

static const struct {
	const char *name;
	enum req_op op;
} hold_ops[] = {
	{ "read",		REQ_OP_READ },
	{ "write",		REQ_OP_WRITE },
	{ "discard",		REQ_OP_DISCARD },
	{ "write_zeroes",	REQ_OP_WRITE_ZEROES },
};

static const char *op_name(enum req_op op)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(hold_ops); i++)
		if (hold_ops[i].op == op)
			return hold_ops[i].name;
	return "?";
}

static int parse_op(const char *name, enum req_op *op)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(hold_ops); i++) {
		if (!strcmp(name, hold_ops[i].name)) {
			*op = hold_ops[i].op;
			return 0;
		}
	}
	return -EINVAL;
}

static void submit_due(struct work_struct *ws);

/* Construct a mapping: <dev path> <offset> */
static int hold_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct hold_c *hc;
	unsigned long long start;
	char dummy;
	int r;

	if (argc != 2) {
		ti->error = "Expected two arguments: <dev path> <offset>";
		return -EINVAL;
	}
	if (sscanf(argv[1], "%llu%c", &start, &dummy) != 1 ||
	    start != (sector_t)start) {
		ti->error = "Offset is not a sector number";
		return -EINVAL;
	}
	hc = kzalloc(sizeof(*hc), GFP_KERNEL);
	if (!hc) {
		ti->error = "Cannot allocate the hold context";
		return -ENOMEM;
	}
	r = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table), &hc->dev);
	if (r) {
		ti->error = "Cannot open the device";
		goto out_free;
	}
	hc->start = start;
	spin_lock_init(&hc->lock);
	bio_list_init(&hc->held);
	bio_list_init(&hc->delayed);
	INIT_DELAYED_WORK(&hc->delay_work, submit_due);
	hc->wq = alloc_workqueue("dm-hold", WQ_MEM_RECLAIM, 0);
	if (!hc->wq) {
		ti->error = "Cannot allocate the workqueue";
		r = -ENOMEM;
		goto out_put;
	}

	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	ti->per_io_data_size = sizeof(struct hold_bio);
	ti->private = hc;
	return 0;

out_put:
	dm_put_device(ti, hc->dev);
out_free:
	kfree(hc);
	return r;
}

static void hold_dtr(struct dm_target *ti)
{
	struct hold_c *hc = ti->private;

	/* presuspend released everything; dm-core suspends before a dtr. */
	WARN_ON_ONCE(!bio_list_empty(&hc->held) ||
		     !bio_list_empty(&hc->delayed));
	cancel_delayed_work_sync(&hc->delay_work);
	destroy_workqueue(hc->wq);
	dm_put_device(ti, hc->dev);
	kfree(hc);
}

/* Caller holds hc->lock.  Does the armed rule take this bio? */
static bool __should_hold(struct hold_c *hc, struct bio *bio, sector_t sector)
{
	return hc->arm_count && bio_op(bio) == hc->arm_op &&
	       bio_sectors(bio) && sector <= hc->arm_sector &&
	       hc->arm_sector < sector + bio_sectors(bio);
}

/* Caller holds hc->lock.  Does the fail rule take this bio? */
static bool __should_fail(struct hold_c *hc, struct bio *bio, sector_t sector)
{
	return hc->fail_count && bio_op(bio) == hc->fail_op &&
	       bio_sectors(bio) && sector < hc->fail_sector + hc->fail_len &&
	       hc->fail_sector < sector + bio_sectors(bio);
}

/* Caller holds hc->lock.  Is this bio one of the randomly delayed ones? */
static bool __should_delay(struct hold_c *hc, struct bio *bio)
{
	return hc->delay_pct && bio_sectors(bio) &&
	       get_random_u32() % 100 < hc->delay_pct;
}

/* Caller holds hc->lock. */
static void __delay_bio(struct hold_c *hc, struct bio *bio)
{
	struct hold_bio *hb = dm_per_bio_data(bio, sizeof(*hb));
	unsigned long delay;

	delay = 1 + get_random_u32() % max(msecs_to_jiffies(hc->delay_ms), 1UL);
	hb->due = jiffies + delay;
	if (bio_list_empty(&hc->delayed))
		queue_delayed_work(hc->wq, &hc->delay_work, delay);
	bio_list_add(&hc->delayed, bio);
	hc->nr_delayed++;
	hc->nr_delayed_total++;
}

/*
 * Submit the delayed bios that are due (all of them if @all) and rearm
 * the work for the earliest of the rest.  Process context.
 */
static void submit_delayed(struct hold_c *hc, bool all)
{
	struct bio_list due = BIO_EMPTY_LIST, later = BIO_EMPTY_LIST;
	unsigned long now = jiffies, next = 0;
	struct hold_bio *hb;
	struct bio *bio;

	spin_lock_irq(&hc->lock);
	while ((bio = bio_list_pop(&hc->delayed))) {
		hb = dm_per_bio_data(bio, sizeof(*hb));
		if (all || time_after_eq(now, hb->due)) {
			bio_list_add(&due, bio);
			hc->nr_delayed--;
			continue;
		}
		if (bio_list_empty(&later) || time_before(hb->due, next))
			next = hb->due;
		bio_list_add(&later, bio);
	}
	hc->delayed = later;
	if (!bio_list_empty(&later))
		queue_delayed_work(hc->wq, &hc->delay_work, next - now);
	spin_unlock_irq(&hc->lock);

	while ((bio = bio_list_pop(&due)))
		dm_submit_bio_remap(bio, NULL);
}

static void submit_due(struct work_struct *ws)
{
	struct hold_c *hc = container_of(to_delayed_work(ws), struct hold_c,
					 delay_work);

	submit_delayed(hc, false);
}

static int hold_map(struct dm_target *ti, struct bio *bio)
{
	struct hold_c *hc = ti->private;
	sector_t sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	unsigned long flags;
	bool hold;

	spin_lock_irqsave(&hc->lock, flags);
	if (__should_fail(hc, bio, sector)) {
		hc->fail_count--;
		hc->nr_failed_total++;
		spin_unlock_irqrestore(&hc->lock, flags);
		return DM_MAPIO_KILL;
	}
	spin_unlock_irqrestore(&hc->lock, flags);

	bio_set_dev(bio, hc->dev->bdev);
	if (bio_sectors(bio) || op_is_zone_mgmt(bio_op(bio)))
		bio->bi_iter.bi_sector = hc->start + sector;

	spin_lock_irqsave(&hc->lock, flags);
	hold = __should_hold(hc, bio, sector);
	if (hold) {
		hc->arm_count--;
		bio_list_add(&hc->held, bio);
		hc->nr_held++;
		hc->nr_held_total++;
	} else if (__should_delay(hc, bio)) {
		__delay_bio(hc, bio);
		hold = true;
	}
	spin_unlock_irqrestore(&hc->lock, flags);

	return hold ? DM_MAPIO_SUBMITTED : DM_MAPIO_REMAPPED;
}

/* Submit every held bio, oldest first.  Process context. */
static void release_held(struct hold_c *hc)
{
	struct bio_list bios;
	struct bio *bio;

	spin_lock_irq(&hc->lock);
	bios = hc->held;
	bio_list_init(&hc->held);
	hc->nr_held = 0;
	spin_unlock_irq(&hc->lock);

	while ((bio = bio_list_pop(&bios)))
		dm_submit_bio_remap(bio, NULL);
}

static void disarm(struct hold_c *hc)
{
	spin_lock_irq(&hc->lock);
	hc->arm_count = 0;
	spin_unlock_irq(&hc->lock);
}

static int process_delay_mesg(struct hold_c *hc, unsigned int argc,
			      char **argv)
{
	unsigned int pct, ms;

	if (argc != 3 || kstrtouint(argv[1], 10, &pct) || pct > 100 ||
	    kstrtouint(argv[2], 10, &ms) || (pct && !ms))
		return -EINVAL;
	spin_lock_irq(&hc->lock);
	hc->delay_pct = pct;
	hc->delay_ms = ms;
	spin_unlock_irq(&hc->lock);
	return 0;
}

static int process_arm_mesg(struct hold_c *hc, unsigned int argc, char **argv)
{
	unsigned long long sector;
	unsigned int count = 1;
	enum req_op op;

	if (argc != 3 && argc != 4)
		return -EINVAL;
	if (kstrtoull(argv[1], 10, &sector) || sector != (sector_t)sector ||
	    parse_op(argv[2], &op))
		return -EINVAL;
	if (argc == 4 && (kstrtouint(argv[3], 10, &count) || !count))
		return -EINVAL;

	spin_lock_irq(&hc->lock);
	hc->arm_sector = sector;
	hc->arm_op = op;
	hc->arm_count = count;
	spin_unlock_irq(&hc->lock);
	return 0;
}

static int process_fail_mesg(struct hold_c *hc, unsigned int argc, char **argv)
{
	unsigned long long sector, len;
	unsigned int count;
	enum req_op op;

	if (argc != 5 || kstrtoull(argv[1], 10, &sector) ||
	    kstrtoull(argv[2], 10, &len) || !len ||
	    sector + len < sector ||
	    parse_op(argv[3], &op) || kstrtouint(argv[4], 10, &count))
		return -EINVAL;

	spin_lock_irq(&hc->lock);
	hc->fail_sector = sector;
	hc->fail_len = len;
	hc->fail_op = op;
	hc->fail_count = count;
	spin_unlock_irq(&hc->lock);
	return 0;
}

static int hold_message(struct dm_target *ti, unsigned int argc, char **argv,
			char *result, unsigned int maxlen)
{
	struct hold_c *hc = ti->private;
	int r = -EINVAL;

	if (!strcasecmp(argv[0], "arm")) {
		r = process_arm_mesg(hc, argc, argv);
	} else if (!strcasecmp(argv[0], "disarm") && argc == 1) {
		disarm(hc);
		r = 0;
	} else if (!strcasecmp(argv[0], "delay")) {
		r = process_delay_mesg(hc, argc, argv);
	} else if (!strcasecmp(argv[0], "release") && argc == 1) {
		release_held(hc);
		r = 0;
	} else if (!strcasecmp(argv[0], "fail")) {
		r = process_fail_mesg(hc, argc, argv);
	} else if (!strcasecmp(argv[0], "heal") && argc == 1) {
		spin_lock_irq(&hc->lock);
		hc->fail_count = 0;
		spin_unlock_irq(&hc->lock);
		r = 0;
	}
	if (r)
		DMWARN("Unrecognised or malformed message: %s (%u words)",
		       argv[0], argc);
	return r;
}

static void hold_presuspend(struct dm_target *ti)
{
	struct hold_c *hc = ti->private;

	spin_lock_irq(&hc->lock);
	hc->arm_count = 0;
	hc->delay_pct = 0;
	spin_unlock_irq(&hc->lock);
	release_held(hc);
	cancel_delayed_work_sync(&hc->delay_work);
	submit_delayed(hc, true);
}

static void hold_status(struct dm_target *ti, status_type_t type,
			unsigned int status_flags, char *result,
			unsigned int maxlen)
{
	struct hold_c *hc = ti->private;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		spin_lock_irq(&hc->lock);
		DMEMIT("%u %llu ", hc->nr_held, hc->nr_held_total);
		if (hc->arm_count)
			DMEMIT("%llu:%s:%u", (unsigned long long)hc->arm_sector,
			       op_name(hc->arm_op), hc->arm_count);
		else
			DMEMIT("-");
		DMEMIT(" %u %llu ", hc->nr_delayed, hc->nr_delayed_total);
		if (hc->delay_pct)
			DMEMIT("%u:%u", hc->delay_pct, hc->delay_ms);
		else
			DMEMIT("-");
		DMEMIT(" %llu ", hc->nr_failed_total);
		if (hc->fail_count)
			DMEMIT("%llu+%llu:%s:%u",
			       (unsigned long long)hc->fail_sector,
			       (unsigned long long)hc->fail_len,
			       op_name(hc->fail_op), hc->fail_count);
		else
			DMEMIT("-");
		spin_unlock_irq(&hc->lock);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %llu", hc->dev->name, (unsigned long long)hc->start);
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static int hold_iterate_devices(struct dm_target *ti,
				iterate_devices_callout_fn fn, void *data)
{
	struct hold_c *hc = ti->private;

	return fn(ti, hc->dev, hc->start, ti->len, data);
}

static struct target_type hold_target = {
	.name = "hold",
	.version = {1, 1, 0},
	.module = THIS_MODULE,
	.ctr = hold_ctr,
	.dtr = hold_dtr,
	.map = hold_map,
	.presuspend = hold_presuspend,
	.status = hold_status,
	.message = hold_message,
	.iterate_devices = hold_iterate_devices,
};

static int __init dm_hold_init(void)
{
	return dm_register_target(&hold_target);
}

static void __exit dm_hold_exit(void)
{
	dm_unregister_target(&hold_target);
}

module_init(dm_hold_init);
module_exit(dm_hold_exit);

MODULE_DESCRIPTION(DM_NAME " target holding chosen bios in flight (tests only)");
MODULE_AUTHOR("dm-chain developers");
MODULE_LICENSE("GPL");
