/* mqtx config: show the effective configuration (secrets redacted) and
 * where each value came from, or list every key. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

static const struct mqtx_opt config_opts[] = {
	{"keys", 0, NULL, NULL, "list every key with its type, default and environment variable"},
	OPT_END,
};

static void print_keys(void)
{
	for (size_t i = 0; i < mqtx_config_key_count(); i++) {
		char *env = mqtx_config_env_name(i);
		const char *d = mqtx_config_key_default(i);
		printf("%s\t%s\t%s\t%s\t%s\n", mqtx_config_key_name(i), mqtx_config_key_type(i), d ? d : "",
		       mqtx_config_key_env(i) ? env : "-", mqtx_config_key_help(i));
		free(env);
	}
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
	const struct mqtx_config *cfg = c->cli.cfg;
	for (size_t i = 0; i < mqtx_config_key_count(); i++) {
		char *v = mqtx_config_value_text(cfg, i);
		const char *origin = cfg->origin[i] ? cfg->origin[i] : "default";
		printf("%s = %s\t# %s\n", mqtx_config_key_name(i), v, origin);
		free(v);
	}
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
