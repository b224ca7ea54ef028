// SPDX-License-Identifier: GPL-2.0-only
/*
 * chain-inject: test-only delays and allocation failures inside dm-chain,
 * through kretprobes, so that races which depend on a window of a few
 * instructions happen every time.  dm-chain itself carries no test hooks:
 * this module finds its functions by name when it is loaded (after
 * dm-chain) and is never installed.
 *
 * Parameters (/sys/module/chain_inject/parameters/):
 *
 *   walk_vc=<vc>	(-1: off) the next time the background walk decides
 *			that virtual cluster <vc> needs no copy
 *			(entry_needs_sync() returns false, called from
 *			do_job(): its needs_sync() is inlined there),
 *			hold the walk right there, before it moves its
 *			cursor past <vc>.  One shot.
 *   commit_hold=1	the next FUA write dm-chain issues through dm_io()
 *			(a commit's step-3 header write) is held once it has
 *			completed, before the commit records itself as done.
 *			One shot.
 *   fail_alloc=1	every allocation that one of dm-chain's mempools
 *			asks of the slab fails, so each element comes from
 *			the pool's reserve; 0 stops it.
 *   fail_owe=1		every bitmap_zalloc() called from dm-chain (a
 *			chunk of a job's owed bitmap) fails; 0 stops it.
 *   hold_ms		(5000) the longest a hold lasts.
 *   release=1		ends the current hold.
 *   held, failed	(read) holds begun and allocations failed so far.
 *
 * A hold is a busy wait (udelay) in the probe's return handler, with
 * whatever the probed code held at that point (a spinlock with interrupts
 * off, for the walk of a fixed dm-chain): the guest needs two CPUs, and a
 * hold is short.  Not for production use.
 */

#include <linux/module.h>
#include <linux/kprobes.h>
#include <linux/kallsyms.h>
#include <linux/dm-io.h>
#include <linux/delay.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

static long walk_vc = -1;
module_param(walk_vc, long, 0644);
MODULE_PARM_DESC(walk_vc, "hold the walk after it passes this cluster by");
static bool commit_hold;
module_param(commit_hold, bool, 0644);
MODULE_PARM_DESC(commit_hold, "hold the next commit after its header write");
static bool fail_alloc;
module_param(fail_alloc, bool, 0644);
MODULE_PARM_DESC(fail_alloc, "fail dm-chain's mempool slab allocations");
static bool fail_owe;
module_param(fail_owe, bool, 0644);
MODULE_PARM_DESC(fail_owe, "fail dm-chain's bitmap_zalloc() calls");
static unsigned int hold_ms = 5000;
module_param(hold_ms, uint, 0644);
MODULE_PARM_DESC(hold_ms, "longest hold, in milliseconds");
static bool release;
module_param(release, bool, 0644);
MODULE_PARM_DESC(release, "write 1 to end the current hold");
static unsigned int held;
module_param(held, uint, 0444);
MODULE_PARM_DESC(held, "holds begun");
static unsigned int failed;
module_param(failed, uint, 0444);
MODULE_PARM_DESC(failed, "allocations failed");

/*
 * At a function's entry, is the return address on the stack in dm-chain
 * (and in its function func, unless NULL)?
 */
static bool called_from(struct pt_regs *regs, const char *func)
{
	char sym[KSYM_SYMBOL_LEN];

	sprint_symbol(sym, *(unsigned long *)kernel_stack_pointer(regs));
	if (!strstr(sym, " [dm_chain]"))
		return false;
	return !func || (!strncmp(sym, func, strlen(func)) &&
			 sym[strlen(func)] == '+');
}

static void hold(void)
{
	unsigned int i;

	WRITE_ONCE(release, false);
	WRITE_ONCE(held, held + 1);
	for (i = 0; i < hold_ms * 10 && !READ_ONCE(release); i++)
		udelay(100);
}

/* ---- walk_vc: entry_needs_sync() called from do_job() ---- */

struct walk_data {
	long vc;
};

static int walk_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct walk_data *d = (struct walk_data *)ri->data;
	long want = READ_ONCE(walk_vc);

	/* entry_needs_sync(job, vc, entry, bytes) */
	if (want < 0 || regs->si != want || !called_from(regs, "do_job"))
		return 1;	/* no return probe for this call */
	d->vc = want;
	return 0;
}

static int walk_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct walk_data *d = (struct walk_data *)ri->data;

	if (regs_return_value(regs) & 0xff)
		return 0;	/* a copy: not the skip */
	if (cmpxchg(&walk_vc, d->vc, -1) != d->vc)
		return 0;
	hold();
	return 0;
}

static struct kretprobe walk_probe = {
	.kp.symbol_name = "dm_chain:entry_needs_sync",
	.entry_handler = walk_entry,
	.handler = walk_ret,
	.data_size = sizeof(struct walk_data),
	.maxactive = 8,
};

/* ---- commit_hold: dm_io() with REQ_FUA, called from dm-chain ---- */

static int io_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct dm_io_request *req = (struct dm_io_request *)regs->di;

	if (!READ_ONCE(commit_hold) || !(req->bi_opf & REQ_FUA) ||
	    !called_from(regs, NULL))
		return 1;
	return 0;
}

static int io_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	if (regs_return_value(regs) || !xchg(&commit_hold, false))
		return 0;
	hold();
	return 0;
}

static struct kretprobe io_probe = {
	.kp.symbol_name = "dm_io",
	.entry_handler = io_entry,
	.handler = io_ret,
	.maxactive = 16,
};

/*
 * ---- fail_alloc: mempool_kmalloc() inside a mempool_alloc() that
 * dm-chain called.  The tasks inside such a call are kept in a small set.
 */

#define MAX_TASKS 32
static struct task_struct *inside[MAX_TASKS];
static DEFINE_SPINLOCK(inside_lock);

static void mark(struct task_struct *t, struct task_struct *to)
{
	unsigned long flags;
	int i;

	spin_lock_irqsave(&inside_lock, flags);
	for (i = 0; i < MAX_TASKS; i++) {
		if (inside[i] == t) {
			inside[i] = to;
			break;
		}
	}
	spin_unlock_irqrestore(&inside_lock, flags);
}

static bool is_inside(struct task_struct *t)
{
	unsigned long flags;
	bool r = false;
	int i;

	spin_lock_irqsave(&inside_lock, flags);
	for (i = 0; i < MAX_TASKS && !r; i++)
		r = inside[i] == t;
	spin_unlock_irqrestore(&inside_lock, flags);
	return r;
}

static int pool_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	if (!READ_ONCE(fail_alloc) || !called_from(regs, NULL))
		return 1;
	mark(NULL, current);
	return 0;
}

static int pool_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	mark(current, NULL);
	return 0;
}

static struct kretprobe pool_probe = {
	.kp.symbol_name = "mempool_alloc",
	.entry_handler = pool_entry,
	.handler = pool_ret,
	.maxactive = MAX_TASKS,
};

/* Make an allocation that succeeded fail: free it, return NULL, count. */
static void fail_result(struct pt_regs *regs, void *p)
{
	kfree(p);
	regs_set_return_value(regs, 0);
	WRITE_ONCE(failed, failed + 1);
}

static int kmalloc_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	void *p = (void *)regs_return_value(regs);

	if (p && READ_ONCE(fail_alloc) && is_inside(current))
		fail_result(regs, p);
	return 0;
}

static struct kretprobe kmalloc_probe = {
	.kp.symbol_name = "mempool_kmalloc",
	.handler = kmalloc_ret,
	.maxactive = 64,
};

/* ---- fail_owe: bitmap_zalloc() called from dm-chain ---- */

static int bitmap_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	return READ_ONCE(fail_owe) && called_from(regs, NULL) ? 0 : 1;
}

static int bitmap_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	void *p = (void *)regs_return_value(regs);

	if (p)
		fail_result(regs, p);	/* bitmap_free() is kfree() */
	return 0;
}

static struct kretprobe bitmap_probe = {
	.kp.symbol_name = "bitmap_zalloc",
	.entry_handler = bitmap_entry,
	.handler = bitmap_ret,
	.maxactive = 16,
};

static struct kretprobe *probes[] = {
	&walk_probe, &io_probe, &bitmap_probe, &pool_probe, &kmalloc_probe,
};

static int __init chain_inject_init(void)
{
	int r;

	r = register_kretprobe(&pool_probe);
	if (r == -ENOENT || r == -EINVAL) {
		/* 6.10 on: mempool_alloc() is a macro over this one */
		pool_probe.kp.symbol_name = "mempool_alloc_noprof";
		pool_probe.kp.addr = NULL;
		r = register_kretprobe(&pool_probe);
	}
	if (r) {
		pr_err("chain-inject: cannot probe %s: %d\n",
		       pool_probe.kp.symbol_name, r);
		return r;
	}
	r = register_kretprobes(probes, 3);
	if (r) {
		pr_err("chain-inject: cannot probe dm_chain:entry_needs_sync, dm_io or bitmap_zalloc (is dm-chain loaded?): %d\n",
		       r);
		goto fail_pool;
	}
	r = register_kretprobe(&kmalloc_probe);
	if (r) {
		pr_err("chain-inject: cannot probe mempool_kmalloc: %d\n", r);
		goto fail_two;
	}
	return 0;

fail_two:
	unregister_kretprobes(probes, 3);
fail_pool:
	unregister_kretprobe(&pool_probe);
	return r;
}

static void __exit chain_inject_exit(void)
{
	WRITE_ONCE(release, true);
	unregister_kretprobes(probes, ARRAY_SIZE(probes));
}

module_init(chain_inject_init);
module_exit(chain_inject_exit);

MODULE_DESCRIPTION("test-only delays and allocation failures in dm-chain");
MODULE_AUTHOR("dm-chain developers");
MODULE_LICENSE("GPL");
