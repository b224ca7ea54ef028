// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm format: write a new, empty layer.
 */
#include <getopt.h>
#include <string.h>

#include "layer.h"

static int parse_cluster_size(const char *s, uint32_t *out)
{
	uint64_t v;

	if (parse_size("--cluster-size", s, &v))
		return -1;
	if (!is_power_of_2(v) || v < DM_CHAIN_MIN_CLUSTER_SIZE ||
	    v > DM_CHAIN_MAX_CLUSTER_SIZE)
		return usage_error("--cluster-size: %s is not a power of two between 4K and 2M", s);
	*out = v;
	return 0;
}

static int parse_backing_type(const char *s, int *out)
{
	if (!strcmp(s, "raw"))
		*out = DM_CHAIN_BACKING_RAW;
	else if (!strcmp(s, "chain"))
		*out = DM_CHAIN_BACKING_CHAIN;
	else
		return usage_error("--backing-type: '%s' is neither raw nor chain", s);
	return 0;
}

static int parse_virtual_size(const char *s, uint64_t *out)
{
	if (parse_size("--size", s, out))
		return -1;
	if (!*out || *out % DM_CHAIN_BLOCK_SIZE)
		return usage_error("--size: %s is not a non-zero multiple of 4K", s);
	return 0;
}

int cmd_format(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size",		required_argument, NULL, 's' },
		{ "cluster-size",	required_argument, NULL, 'c' },
		{ "layer-size",		required_argument, NULL, 'l' },
		{ "backing",		required_argument, NULL, 'b' },
		{ "backing-type",	required_argument, NULL, 'F' },
		{ "quiet",		no_argument,	   NULL, 'q' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct format_req req = { .backing_type = -1 };
	int c, r = 0;

	while (!r && (c = getopt_long(argc, argv, "s:c:l:b:F:qh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			r = parse_virtual_size(optarg, &req.virtual_size);
			break;
		case 'c':
			r = parse_cluster_size(optarg, &req.cluster_size);
			break;
		case 'l':
			r = parse_size("--layer-size", optarg, &req.layer_size);
			break;
		case 'b':
			req.backing = optarg;
			break;
		case 'F':
			r = parse_backing_type(optarg, &req.backing_type);
			break;
		case 'q':
			req.quiet = true;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (r)
		return EXIT_USAGE;
	if (optind != argc - 1)
		return usage_error("expects one layer path");
	if (!req.backing && !req.virtual_size)
		return usage_error("--size is required without --backing");
	if (!req.backing && req.backing_type >= 0)
		return usage_error("--backing-type needs --backing");
	req.path = argv[optind];
	return format_layer(&req) ? EXIT_FAIL : EXIT_OK;
}
