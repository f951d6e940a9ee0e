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

const struct mqtx_cmd_info cmd_config_info = {
	.name = "config",
	.synopsis = "[--keys]",
	.summary = "show the effective configuration and where each value came from",
	.opts = config_opts,
	.exit_codes = "  0  shown\n  2  usage error\n  3  configuration error\n  7  cannot write standard output",
};

static int on_opt(void *ctx, const char *lng, const char *value)
{
	(void)ctx;
	(void)lng;
	(void)value;
	return 0; /* --keys is handled before parsing */
}

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

int cmd_config(int argc, char **argv)
{
	/* The key list does not depend on any configuration: show it even when
	 * the configuration is broken. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--keys") == 0) {
			print_keys();
			return EXIT_OK;
		}
	}
	struct mqtx_cli cli;
	int rc = mqtx_cli_parse(&cmd_config_info, argc, argv, &cli, on_opt, NULL);
	if (rc != 0)
		return rc < 0 ? EXIT_OK : rc;
	if (cli.nargs > 0) {
		mqtx_cli_free(&cli);
		return mqtx_usage_error("config", "unexpected argument '%s'", cli.args[0]);
	}
	for (size_t i = 0; i < mqtx_config_key_count(); i++) {
		char *v = mqtx_config_value_text(cli.cfg, i);
		const char *origin = cli.cfg->origin[i] ? cli.cfg->origin[i] : "default";
		printf("%s = %s\t# %s\n", mqtx_config_key_name(i), v, origin);
		free(v);
	}
	mqtx_cli_free(&cli);
	return EXIT_OK;
}
