// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm: administer dm-chain layers and devices.
 *
 *   chainadm [--nowait] <verb> [options] <args>
 *
 * One table entry per verb; each handler parses its own options with
 * getopt_long and returns an exit code (chainadm.h, chainadm(8)).  The
 * global options, before the verb, apply to every verb (lock.h).
 */
#include <getopt.h>
#include <string.h>

#include "chainadm.h"
#include "dm-chain-release.h"
#include "lock.h"
#include "output.h"

#define FEATURE_OPTIONS \
	"     --ignore-discard       ignore discards\n" \
	"     --no-discard-passdown  do not pass discards to the layers\n" \
	"     --error-if-no-space    fail writes at once when a layer is full\n" \
	"     --no-space-timeout <seconds>\n" \
	"                            queue writes that long when a layer is full\n"

#define JOB_WAIT_OPTIONS \
	"     --wait                 wait until the job completes or is ready,\n" \
	"                            then end it as asked\n" \
	"     --verbose              show the progress while waiting\n"

static const struct verb verbs[] = {
	{ "format", "[options] <file|device>",
	  "Write a new, empty dm-chain layer; a file is created sparse.",
	  " -s, --size <size>          virtual size (suffixes K, M, G, T)\n"
	  " -c, --cluster-size <size>  cluster size, 4K to 2M (default 64K)\n"
	  " -l, --layer-size <size>    size of the file (default: room for every cluster)\n"
	  " -b, --backing <layer>      layer below the new one\n"
	  " -F, --backing-type <type>  raw or chain (default: chain if it has the magic)\n"
	  " -q, --quiet                print nothing on success\n",
	  cmd_format, NULL },
	{ "info", "[options] <layer>",
	  "Show the header of a layer and, optionally, of every layer below it.",
	  "     --backing-chain        follow the backing hints down to the base\n"
	  "As a table (a line a layer, top first):\n"
	  OUT_HELP,
	  cmd_info, info_help },
	{ "check", "[options] <layer>",
	  "Check the consistency of a layer offline.",
	  "     --clear-needs-check    if no error is found, clear the needs-check flag\n"
	  " -q, --quiet                report errors and warnings only\n"
	  "The findings as a table (severity, layer, message):\n"
	  OUT_HELP,
	  cmd_check, check_help },
	{ "create", "[options] <name> <top-layer>\n"
		    " chainadm create [options] --layers <name> <bottom-layer> [<layer>...] <top-layer>",
	  "Assemble a chain and create the device /dev/mapper/<name>.",
	  "     --layers               the layers are listed bottom first (no hints)\n"
	  "     --raw-base             with --layers: the bottom layer is a raw device\n"
	  FEATURE_OPTIONS,
	  cmd_create, NULL },
	{ "remove", "<name>",
	  "Remove a chain device and detach the loop devices of its layers.",
	  NULL, cmd_remove, NULL },
	{ "list", "[options]",
	  "List the chain devices.",
	  OUT_HELP,
	  cmd_list, list_help },
	{ "status", "[options] <name>",
	  "Show the layers and the state of a chain device.",
	  "As a table (the device, its layers below it, bottom first):\n"
	  OUT_HELP,
	  cmd_status, status_help },
	{ "snapshot", "[options] <name> <new-overlay>",
	  "Take a live external snapshot: a new active layer over the current one.",
	  " -l, --layer-size <size>    size of the new file (default: room for every cluster)\n",
	  cmd_snapshot, NULL },
	{ "map", "[options] <name|layer>",
	  "Draw which layer holds each cluster and what the guest sees.",
	  " -w, --width <columns>      line width (default: the terminal's)\n"
	  "     --extents              list what the guest reads as runs of\n"
	  "                            clusters, each from one layer (as\n"
	  "                            qemu-img map); implied by:\n"
	  OUT_HELP,
	  cmd_map, map_help },
	{ "pull", "[options] <name>",
	  "Pull the data of lower layers up into the active layer (stream).",
	  "     --base <layer>         keep this layer and the ones below it\n"
	  "                            (default: all, the active layer stands alone)\n"
	  "     --bandwidth <rate>     limit the copy rate: MiB/s, or bytes/s with a\n"
	  "                            suffix (512K); 0: unlimited\n"
	  JOB_WAIT_OPTIONS
	  "     --json                 print the job as JSON at the end\n",
	  cmd_pull, NULL },
	{ "commit", "[options] <name>",
	  "Commit layers down into a lower one and drop them from the chain.",
	  "     --top <layer>          the highest layer committed (default: the one\n"
	  "                            below the active layer)\n"
	  "     --base <layer>         the layer committed into (default: the bottom)\n"
	  "     --active               commit the active layer too; the job then\n"
	  "                            becomes ready and ends with a pivot or not\n"
	  "     --pivot                when ready, make the base the active layer\n"
	  "     --keep-overlay         when ready, end the job, keeping the chain\n"
	  "     --force                commit into a base another device uses\n"
	  "     --bandwidth <rate>     limit the copy rate: MiB/s, or bytes/s with a\n"
	  "                            suffix (512K); 0: unlimited\n"
	  JOB_WAIT_OPTIONS
	  "     --json                 print the job as JSON at the end\n",
	  cmd_commit, NULL },
	{ "copy", "[options] <name> <dest>",
	  "Copy the disk to a new file or device while it is in use (mirror).",
	  "     --shallow              copy the active layer only; dest stands on the\n"
	  "                            layer below it\n"
	  "     --raw                  dest is a raw image, not a chain layer\n"
	  "     --reuse-external       dest exists already (checked, not created)\n"
	  "     --pivot                when ready, switch the device to dest\n"
	  "     --finish               when ready, end the copy: dest keeps the disk\n"
	  "                            of that moment, the device stays as it is\n"
	  "     --bandwidth <rate>     limit the copy rate: MiB/s, or bytes/s with a\n"
	  "                            suffix (512K); 0: unlimited\n"
	  JOB_WAIT_OPTIONS
	  "     --json                 print the job as JSON at the end\n",
	  cmd_copy, NULL },
	{ "job", "[options] <name>",
	  "Show or control the block job of a device.",
	  "     --info                 show the job (the default)\n"
	  "     --abort                cancel the job, keeping the chain as it is\n"
	  "     --pivot                when ready, switch to the new chain\n"
	  "     --finish               when ready, end a copy (dest keeps the disk\n"
	  "                            of that moment) or an active commit\n"
	  "     --pause                stop issuing copies\n"
	  "     --resume               go on after --pause, or retry a failed job\n"
	  "     --bandwidth <rate>     change the rate limit: MiB/s, or bytes/s with\n"
	  "                            a suffix (512K); 0: unlimited\n"
	  JOB_WAIT_OPTIONS
	  "     --json                 print JSON\n",
	  cmd_job, NULL },
	{ "extend", "[options] <name>",
	  "Give the active layer the room its grown file, LV or partition has.",
	  " -l, --layer-size [+]<size> grow the layer's file to (or by) size; for\n"
	  "                            a device, check it is that long (default: a\n"
	  "                            file grows to hold every cluster)\n",
	  cmd_extend, NULL },
	{ "monitor", "[options] <name>",
	  "Wait on the device's events and grow the active layer before it is full.",
	  " -a, --at <percent>         act when the active layer is this full\n"
	  "                            (default 80), or full\n"
	  " -r, --run <command>        run this first (e.g. lvextend), with\n"
	  "                            CHAINADM_DEVICE, CHAINADM_LAYER and\n"
	  "                            CHAINADM_USED_PERCENT set; then extend\n"
	  " -l, --layer-size +<size>   a file layer grows by size each time\n"
	  "                            (default: to hold every cluster)\n",
	  cmd_monitor, NULL },
	{ "recover", "<name> <top-layer>",
	  "Assemble a chain whose job was cut short by a crash: old or new chain.",
	  NULL, cmd_recover, NULL },
	{ "assemble", "[options] --all | <name>...",
	  "Create the chain devices the chaintab lists that are not there yet.",
	  "     --all                  every device listed without noauto or _netdev\n"
	  "     --netdev               with --all: the _netdev devices instead\n"
	  "                            (once the network is up)\n",
	  cmd_assemble, NULL },
};

const struct verb *current_verb;

static int main_help(FILE *f)
{
	unsigned int i;

	fprintf(f, "\nUsage:\n chainadm [--nowait] <verb> [options] <args>\n\n"
		"Administer dm-chain layers and devices.\n\nVerbs:\n");
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, " %-10s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f, "\nOptions:\n"
		"     --nowait   if another chainadm works on the device or a layer,\n"
		"                fail at once, naming it, instead of waiting\n"
		" -h, --help     display this help\n"
		" -V, --version  display version\n\n"
		"Run 'chainadm <verb> --help' for the options of a verb.\n"
		"See chainadm(8).\n");
	return f == stdout ? EXIT_OK : EXIT_USAGE;
}

/*
 * chainadm's release and the loaded module's (MODULE_VERSION): one string,
 * dm-chain-release.h.  Read from sysfs, so it needs no privilege.
 */
static int print_version(void)
{
	char mod[64] = "";
	FILE *f = fopen("/sys/module/dm_chain/version", "re");

	printf("chainadm %s\n", DM_CHAIN_RELEASE);
	if (f) {
		if (!fgets(mod, sizeof(mod), f))
			mod[0] = '\0';
		fclose(f);
		mod[strcspn(mod, "\n")] = '\0';
	}
	if (!f)
		printf("dm-chain module: not loaded\n");
	else if (!*mod)
		printf("dm-chain module: loaded, with no version (older than 0.1)\n");
	else
		printf("dm-chain module %s%s\n", mod,
		       strcmp(mod, DM_CHAIN_RELEASE) ?
		       " (not chainadm's release: install both from one release)" : "");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static char argv0[64];
	unsigned int i;
	int arg;

	lock_set_command(argc, argv);
	/* Global options come before the verb. */
	for (arg = 1; arg < argc && argv[arg][0] == '-'; arg++) {
		if (!strcmp(argv[arg], "-h") || !strcmp(argv[arg], "--help"))
			return main_help(stdout);
		if (!strcmp(argv[arg], "-V") || !strcmp(argv[arg], "--version"))
			return print_version();
		if (strcmp(argv[arg], "--nowait")) {
			fprintf(stderr, "chainadm: unknown option '%s'\n", argv[arg]);
			return main_help(stderr);
		}
		lock_nowait = true;
	}
	if (arg == argc)
		return main_help(stderr);
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(argv[arg], verbs[i].name))
			continue;
		current_verb = &verbs[i];
		/* getopt prefixes its messages with argv[0]. */
		snprintf(argv0, sizeof(argv0), "chainadm %s", verbs[i].name);
		argv[arg] = argv0;
		return verbs[i].handler(argc - arg, argv + arg);
	}
	fprintf(stderr, "chainadm: unknown verb '%s'\n", argv[arg]);
	return main_help(stderr);
}
