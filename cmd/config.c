/* mqtx config: show the effective configuration (secrets redacted) and
 * where each value came from, or list every key. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "render/config.h"
#include "commands.h"

static const struct mqtx_opt config_opts[] = {
	{"keys", 0, NULL, NULL, "list every key with its type, default and environment variable"},
	OPT_END,
};

static void print_keys(void)
{
	struct mqtx_render r;
	mqtx_render_init_file(&r, stdout, false);
	mqtx_render_config_keys(&r);
	mqtx_render_finish(&r); /* a failed write: main() says so, exit 7 */
}

/* The key list does not depend on any configuration: show it even when
 * the configuration is broken. */
static int before_parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--keys") == 0) {
			print_keys();
			return EXIT_OK;
		}
	}
	return -1;
}

static int run(struct mqtx_cmd *c)
{
	struct mqtx_render r;
	mqtx_render_init_file(&r, stdout, false);
	mqtx_render_config_values(&r, c->cli.cfg);
	mqtx_render_finish(&r); /* a failed write: main() says so, exit 7 */
	return EXIT_OK;
}

const struct mqtx_cmd_info cmd_config_info = {
	.name = "config",
	.synopsis = "[--keys]",
	.summary = "show the effective configuration and where each value came from",
	.opts = config_opts,
	.exit_codes = "  0  shown\n  2  usage error\n  3  configuration error\n  7  cannot write standard output",
	.before_parse = before_parse, /* --keys */
	.run = run,
};
