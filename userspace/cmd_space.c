// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm extend, chainadm monitor: room for the active layer.
 *
 * The target takes a grown active layer on at resume (it reads the
 * device size again), and a noflush suspend hands the writes queued on
 * a full layer back to dm-core, which sends them again after the resume.
 * So growing is: make the device longer first (a file here, an LV or a
 * partition by the user's own tool), then suspend and resume.  The other
 * order hangs with LVM: lvextend opens every block device, the suspended
 * chain included.
 *
 * monitor waits on the device's dm events; the target raises one each
 * time the active layer's used share crosses a whole percent, and when
 * the layer is full.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "chainadm.h"
#include "device.h"
#include "dm.h"
#include "lock.h"
#include "loop.h"

/* Seconds before the monitor tries again after a failed round. */
#define MONITOR_RETRY	10

struct grow {
	bool given;		/* --layer-size */
	bool relative;		/* +SIZE: grow by, not to */
	uint64_t size;
};

static int parse_grow(const char *arg, struct grow *g)
{
	g->given = true;
	g->relative = arg[0] == '+';
	if (parse_size("--layer-size", arg + g->relative, &g->size))
		return -1;
	if (!g->size)
		return usage_error("--layer-size wants a size above zero");
	return 0;
}

/* What the active layer of lv is: its device, and its label. */
struct active {
	dev_t dev;
	struct obj_id id;	/* id.file: a file behind a loop device */
	char label[PATH_MAX];	/* the file, or the device node */
	uint64_t bytes;		/* the file's or the device's size */
	uint64_t data_offset;	/* in bytes */
	uint64_t cluster_size;
	uint64_t full_size;	/* bytes that hold every cluster */
};

static int find_active(const struct live *lv, struct active *a)
{
	struct layer l = { .fd = -1 };

	if (!lv->s.has_clusters) {
		errmsg(lv->name, "is one raw device: its size is the disk's size and it never fills up; extend grows the active layer of a chain");
		return -1;
	}
	a->dev = lv->t.dev[lv->t.n - 1];
	if (dev_identity(a->dev, &a->id) || dev_label(a->dev, a->label,
						      sizeof(a->label)) ||
	    live_read_header(a->dev, &l))
		return -1;
	a->bytes = l.size;
	a->data_offset = l.info.data_offset;
	a->cluster_size = l.info.cluster_size;
	a->full_size = l.info.data_offset +
		       l.info.nr_clusters * l.info.cluster_size;
	layer_close(&l);
	return 0;
}

/*
 * Make the file behind the loop device a->dev size bytes long.  The file
 * is opened by the name its loop device gives and checked to be the one
 * the device uses.
 */
static int grow_file(const struct active *a, uint64_t size)
{
	char node[PATH_MAX];
	struct obj_id id;
	int fd, r;

	fd = open(a->label, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		errmsg(a->label, "cannot open the layer's file: %s",
		       strerror(errno));
		return -1;
	}
	if (obj_identity(fd, a->label, &id) || !same_obj(&id, &a->id)) {
		errmsg(a->label, "is not the file the device uses (renamed or replaced since it was attached?)");
		close(fd);
		return -1;
	}
	r = ftruncate(fd, size);
	if (r)
		errmsg(a->label, "cannot grow the file: %s", strerror(errno));
	close(fd);
	if (r || dev_path(a->dev, node, sizeof(node)))
		return -1;
	/* The loop device takes the file's new size. */
	fd = open(node, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -1 : ioctl(fd, LOOP_SET_CAPACITY, 0);
	if (r)
		errmsg(node, "cannot take the file's new size: %s",
		       strerror(errno));
	if (fd >= 0)
		close(fd);
	return r ? -1 : 0;
}

/*
 * Grow the active layer's device as g asks: a file here, a block device
 * is only checked.  *bytes: its size now.
 */
static int grow_device(const struct live *lv, const struct active *a,
		       const struct grow *g, uint64_t *bytes)
{
	char want[SIZE_STR_LEN], have[SIZE_STR_LEN];
	uint64_t size;

	*bytes = a->bytes;
	size_str(a->bytes, have, sizeof(have));
	size_str(g->size, want, sizeof(want));
	if (!a->id.file) {
		if (g->relative) {
			errmsg(a->label, "is a block device: --layer-size +SIZE grows a file only; grow it with its own tool (lvextend -L +SIZE), then run chainadm extend %s",
			       lv->name);
			return -1;
		}
		if (g->given && a->bytes < g->size) {
			errmsg(a->label, "is %s, less than --layer-size %s: grow it with its own tool first (lvextend -L %s), then run chainadm extend %s",
			       have, want, want, lv->name);
			return -1;
		}
		return 0;
	}
	if (g->given && !g->relative) {
		if (g->size < a->bytes) {
			errmsg(a->label, "is %s already: --layer-size %s would shrink it (a layer never shrinks)",
			       have, want);
			return -1;
		}
		size = g->size;
	} else if (a->bytes >= a->full_size) {
		return 0;	/* it holds every cluster: nothing to grow */
	} else if (g->given) {
		/* By g->size, but not past what every cluster needs. */
		size = a->bytes + (g->size < a->full_size - a->bytes ?
				   g->size : a->full_size - a->bytes);
	} else {
		/* A file grows to hold every cluster: it stays sparse. */
		size = a->full_size;
	}
	if (size == a->bytes)
		return 0;
	*bytes = size;
	return grow_file(a, size);
}

static unsigned int used_pct(const struct chain_status *s)
{
	return s->total ? s->allocated * 100 / s->total : 100;
}

static void say_space(const char *name, const struct active *a,
		      const struct chain_status *s)
{
	char free_str[SIZE_STR_LEN];
	uint64_t cluster = s->cluster_sectors << 9;

	printf("%s: active layer %s: %llu of %llu clusters used (%u%%), %s free%s\n",
	       name, a->label, (unsigned long long)s->allocated,
	       (unsigned long long)s->total, used_pct(s),
	       size_str((s->total - s->allocated) * cluster, free_str,
			sizeof(free_str)),
	       s->full ? ", full" : "");
}

static bool no_room(const struct chain_status *s)
{
	return s->full || s->allocated >= s->total;
}

/*
 * Grow as g asks, then suspend and resume so that the target takes the
 * new size on and sends the queued writes again.  Under the device's lock.
 * *grew: the target has more clusters now.
 */
static int extend(const char *name, const struct grow *g, bool *grew)
{
	uint64_t bytes, room;
	struct live lv, after;
	struct active a;
	int r = -1;

	*grew = false;
	if (live_lock(&lv, name, NULL))
		return -1;
	if (lv.info.suspended) {
		errmsg(name, "is suspended: resume it first (dmsetup resume %s); extend suspends and resumes it itself",
		       name);
		goto out;
	}
	if (find_active(&lv, &a) || grow_device(&lv, &a, g, &bytes))
		goto out;
	/* What the target will hold after the resume (open's rounding). */
	room = bytes / a.cluster_size - a.data_offset / a.cluster_size;
	if (room <= lv.s.total && no_room(&lv.s)) {
		errmsg(name, "the active layer %s did not grow and is full: grow it first (a file: chainadm extend %s --layer-size +SIZE; an LV: lvextend), then run chainadm extend %s",
		       a.label, name, name);
		goto out;
	}
	if (room <= lv.s.total) {
		say_space(name, &a, &lv.s);	/* nothing to take on */
		r = 0;
		goto out;
	}
	if (dm_op_suspend(name))
		goto out;
	if (dm_op_resume(name)) {
		resume_or_report(name);
		goto out;
	}
	if (live_open(&after, name))
		goto out;
	*grew = after.s.total > lv.s.total;
	say_space(name, &a, &after.s);
	live_close(&after);
	r = 0;
out:
	live_close(&lv);
	unlock_all();	/* monitor extends again later */
	return r;
}

int cmd_extend(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "layer-size",	required_argument, NULL, 'l' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct grow g = { .given = false };
	bool grew;
	int opt;

	while ((opt = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (parse_grow(optarg, &g))
				return EXIT_USAGE;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (argc - optind != 1)
		return usage_error("expects one device name");
	dm_op_init();
	return extend(argv[optind], &g, &grew) ? EXIT_FAIL : EXIT_OK;
}

/* ---- monitor */

/* Run cmd with /bin/sh; 0 when it exited 0. */
static int run_hook(const char *name, const char *cmd, const char *layer,
		    unsigned int pct)
{
	char pct_str[8];
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		errmsg(name, "cannot fork for --run: %s", strerror(errno));
		return -1;
	}
	if (!pid) {
		closefrom(3);	/* libdevmapper's control fd, the locks */
		snprintf(pct_str, sizeof(pct_str), "%u", pct);
		if (setenv("CHAINADM_DEVICE", name, 1) ||
		    setenv("CHAINADM_LAYER", layer, 1) ||
		    setenv("CHAINADM_USED_PERCENT", pct_str, 1))
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			errmsg(name, "cannot wait for --run: %s", strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	if (WIFEXITED(status))
		errmsg(name, "--run '%s' exited with %d", cmd, WEXITSTATUS(status));
	else
		errmsg(name, "--run '%s' was killed by signal %d", cmd,
		       WTERMSIG(status));
	return -1;
}

struct monitor {
	unsigned int at;	/* percent */
	const char *run;	/* or NULL */
	struct grow grow;
};

enum round_end {
	ROUND_IDLE,		/* below --at: wait for an event */
	ROUND_GREW,		/* look again at once: still above --at? */
	ROUND_STUCK,		/* acted, nothing grew: wait for an event */
	ROUND_RETRY,		/* --run or extend failed: try again later */
	ROUND_END,		/* not a device monitor can grow */
};

/* One look at the device: act if the active layer needs room. */
static enum round_end monitor_round(const char *name, const struct monitor *m)
{
	struct chain_status s;
	struct active a;
	struct live lv;
	unsigned int pct;
	bool grew;
	int r;

	if (live_open(&lv, name))
		return ROUND_END;
	r = find_active(&lv, &a);
	s = lv.s;
	live_close(&lv);
	if (r)
		return ROUND_END;
	pct = used_pct(&s);
	if (pct < m->at && !s.full)
		return ROUND_IDLE;
	printf("%s: active layer %s is %u%% used%s (--at %u%%)%s%s\n", name,
	       a.label, pct, s.full ? " and full" : "", m->at,
	       m->run ? ": running " : "", m->run ? m->run : "");
	if (m->run && run_hook(name, m->run, a.label, pct))
		return ROUND_RETRY;
	if (extend(name, &m->grow, &grew))
		return ROUND_RETRY;
	if (grew)
		return ROUND_GREW;
	warnmsg(name, "the active layer %s did not grow: %s; waiting for the next event",
		a.label, a.id.file ? "it holds every cluster already" :
		m->run ? "the --run command did not grow it" :
		"give --run a command that grows it (lvextend)");
	return ROUND_STUCK;
}

static void warn_old_module(const char *name)
{
	uint32_t v[3];

	if (dm_op_target_version(CHAIN_TARGET, v) || v[0] > 1 ||
	    (v[0] == 1 && v[1] >= 2))
		return;
	warnmsg(name, "the loaded dm-chain module (target version %u.%u) raises no space events: monitor acts only when the layer is full; load dm-chain 1.2 or later",
		v[0], v[1]);
}

static int monitor(const char *name, const struct monitor *m)
{
	struct dm_info info;
	enum round_end end;

	warn_old_module(name);
	for (;;) {
		/* The counter first: an event after it ends the wait at once. */
		if (dm_op_probe(name, &info))
			return -1;
		if (!info.exists) {
			printf("%s: the device is gone: monitor ends\n", name);
			return 0;
		}
		if (info.suspended) {
			sleep(1);	/* someone else's: no lvextend now */
			continue;
		}
		end = monitor_round(name, m);
		fflush(stdout);
		switch (end) {
		case ROUND_GREW:
			continue;
		case ROUND_RETRY:
			warnmsg(name, "trying again in %u s", MONITOR_RETRY);
			sleep(MONITOR_RETRY);
			continue;
		case ROUND_END:
			if (!dm_op_probe(name, &info) && !info.exists)
				continue;	/* says it is gone */
			return -1;
		case ROUND_IDLE:
		case ROUND_STUCK:
			break;
		}
		/* Fails when the device goes away under the wait. */
		dm_op_wait_event(name, info.event_nr);
	}
}

int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "at",		required_argument, NULL, 'a' },
		{ "run",	required_argument, NULL, 'r' },
		{ "layer-size",	required_argument, NULL, 'l' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct monitor m = { .at = 80 };
	unsigned long at;
	int opt;

	while ((opt = getopt_long(argc, argv, "a:r:l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			if (parse_uint("--at", optarg, 100, &at))
				return EXIT_USAGE;
			if (!at)
				return usage_error("--at wants a percent from 1 to 100");
			m.at = at;
			break;
		case 'r':
			m.run = optarg;
			break;
		case 'l':
			if (parse_grow(optarg, &m.grow))
				return EXIT_USAGE;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (argc - optind != 1)
		return usage_error("expects one device name");
	if (m.grow.given && !m.grow.relative)
		return usage_error("--layer-size grows the file each time the monitor acts: give it as +SIZE");
	dm_op_init();
	return monitor(argv[optind], &m) ? EXIT_FAIL : EXIT_OK;
}
