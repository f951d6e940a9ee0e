/* main: global options, the command table, dispatch. The dispatcher does
 * what every command needs (parse, configuration, logging, the broker's
 * capabilities for CMD_NEEDS_BROKER, the database for CMD_NEEDS_DB) so that cmd/NAME.c holds only what NAME does. `mqtx
 * CMD -h` needs no database or broker: connecting comes after parsing. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "base/log.h"
#include "base/util.h"
#include "broker/broker.h"
#include "db/pg.h"
#include "commands.h"
#include "common.h"

/* The command table, as git's: what the dispatcher does for each command
 * before and after its run hook (the CMD_* flags of common.h). */
struct command {
	const char *name;
	const struct mqtx_cmd_info *info;
	unsigned flags;
};

static const struct command commands[] = {
	{"init", &cmd_init_info, CMD_NO_ARGS | CMD_NEEDS_DB},
	{"relay", &cmd_relay_info, CMD_NO_ARGS | CMD_NEEDS_BROKER | CMD_LONG_RUNNING},
	{"check", &cmd_check_info, CMD_NO_ARGS | CMD_NEEDS_DB},
	{"redeliver", &cmd_redeliver_info, CMD_NO_ARGS | CMD_NEEDS_BROKER | CMD_LONG_RUNNING},
	/* txpub finds its broker itself: its --report is written even when the
	 * broker URL is wrong, and half messages need none */
	{"txpub", &cmd_txpub_info, CMD_LONG_RUNNING},
	{"dedupe-audit", &cmd_dedupe_audit_info, CMD_LONG_RUNNING},
	{"config", &cmd_config_info, CMD_NO_ARGS},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out, "usage: mqtx [common options] COMMAND [options]\n\n"
		     "Reliable \"database change + message\": relays a PostgreSQL outbox table to\n"
		     "RabbitMQ, Kafka or NATS JetStream without losing messages.\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].info->summary);
	fprintf(out, "\ncommon options (before or after COMMAND):\n");
	mqtx_cli_help_opts(out, mqtx_common_opts);
	fprintf(out, "  -V, --version                print the version and exit\n"
		     "\nRun 'mqtx COMMAND --help' for a command's options. See mqtx(1).\n");
}

static bool takes_value(const char *arg)
{
	for (const struct mqtx_opt *o = mqtx_common_opts; o->lng != NULL; o++) {
		if (o->arg == NULL)
			continue;
		if (arg[1] == o->shrt && arg[2] == '\0')
			return true;
		if (arg[1] == '-' && strcmp(arg + 2, o->lng) == 0)
			return true;
	}
	return false;
}

/* No core dumps and no ptrace by other processes of the same user, before
 * any secret is read: a dump of a relay holds its passwords. This also
 * gives /proc/PID/environ, mem and the like to root. MQTX_DEBUG_DUMPABLE=1
 * keeps the process dumpable, for debugging. */
static void protect_memory(void)
{
	const char *d = getenv("MQTX_DEBUG_DUMPABLE");
	if (d != NULL && strcmp(d, "1") == 0)
		return;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		fprintf(stderr, "mqtx: warning: cannot make the process non-dumpable: %s\n", strerror(errno));
}

static int setup_failed(struct mqtx_cmd *c, int rc, const struct mqtx_err *err)
{
	if (c->info->setup_failed != NULL)
		return c->info->setup_failed(c, rc, err);
	return err != NULL ? mqtx_fail(err) : rc;
}

/* What every command needs before it runs: its options parsed, the
 * configuration loaded and logging set up (mqtx_cli_parse), positional
 * arguments refused, usage checked, the broker found, the database connected; and after it,
 * all of that freed. */
static int run_command(const struct command *cmd, int argc, char **argv)
{
	const struct mqtx_cmd_info *info = cmd->info;
	struct mqtx_cmd c = {.info = info};
	struct mqtx_err err;
	int rc;

	if (info->before_parse != NULL && (rc = info->before_parse(argc, argv)) >= 0)
		return rc;
	c.args = mqtx_xcalloc(1, info->args_size > 0 ? info->args_size : 1);
	if (info->args_init != NULL)
		info->args_init(c.args);
	rc = mqtx_cli_parse(info, argc, argv, &c.cli, info->on_opt, c.args);
	if (rc != 0) {
		rc = rc < 0 ? EXIT_OK : setup_failed(&c, rc, NULL); /* -1: --help was shown */
		goto out_args;
	}
	if ((cmd->flags & CMD_NO_ARGS) && c.cli.nargs > 0)
		rc = setup_failed(&c, mqtx_usage_error(info->name, "unexpected argument '%s'", c.cli.args[0]), NULL);
	else if (info->validate != NULL && (rc = info->validate(&c)) != 0)
		rc = setup_failed(&c, rc, NULL);
	if (rc != 0)
		goto out;
	if ((cmd->flags & CMD_NEEDS_BROKER) && (info->needs_broker == NULL || info->needs_broker(&c))) {
		c.broker = mqtx_backend_find(c.cli.cfg->broker_url, &err);
		if (c.broker == NULL) {
			rc = setup_failed(&c, 0, &err);
			goto out;
		}
	}
	if (cmd->flags & CMD_NEEDS_DB) {
		char client[64];
		snprintf(client, sizeof(client), "mqtx %s", info->name);
		c.db = mqtx_pg_connect(c.cli.cfg, client, &err);
		if (c.db == NULL) {
			rc = setup_failed(&c, 0, &err);
			goto out;
		}
	}
	rc = info->run(&c);
	if (c.db != NULL)
		mqtx_pg_close(c.db);
out:
	mqtx_cli_free(&c.cli);
out_args:
	if (info->args_free != NULL)
		info->args_free(c.args);
	free(c.args);
	return rc;
}

int main(int argc, char **argv)
{
	int first = 1;

	protect_memory();
	mqtx_log_early(argc, argv);

	/* Skip global options before the command name. */
	while (first < argc && argv[first][0] == '-' && argv[first][1] != '\0') {
		const char *a = argv[first];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return EXIT_OK;
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
#ifdef MQTX_FAILPOINTS
			printf("mqtx %s (test build: failpoints enabled)\n", MQTX_VERSION);
#else
			printf("mqtx %s\n", MQTX_VERSION);
#endif
			return EXIT_OK;
		}
		if (strcmp(a, "--") == 0) {
			first++;
			break;
		}
		first += takes_value(a) ? 2 : 1;
	}
	if (first >= argc) {
		if (mqtx_log_get_format() == MQTX_LOG_JSON)
			mqtx_error("no command given (try 'mqtx --help')");
		else
			usage(stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[first];
	const struct command *cmd = NULL;
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		if (mqtx_log_get_format() == MQTX_LOG_JSON)
			mqtx_error("unknown command '%s' (try 'mqtx --help')", name);
		else
			fprintf(stderr, "mqtx: unknown command '%s'\nTry 'mqtx --help'.\n", name);
		return EXIT_USAGE;
	}

	/* The command sees: NAME, global options, its own arguments. */
	char **av = calloc((size_t)argc + 1, sizeof(char *));
	if (av == NULL)
		return EXIT_INTERNAL;
	int ac = 0;
	av[ac++] = argv[first];
	for (int i = 1; i < first; i++)
		av[ac++] = argv[i];
	for (int i = first + 1; i < argc; i++)
		av[ac++] = argv[i];
	av[ac] = NULL;

	mqtx_install_signals((cmd->flags & CMD_LONG_RUNNING) != 0);
	int rc = run_command(cmd, ac, av);
	free(av);

	/* Data goes to stdout: a failed write (full disk, closed pipe) must not pass silently. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		mqtx_error("cannot write to standard output: %s", strerror(errno));
		return rc == EXIT_OK ? EXIT_IO : rc;
	}
	return rc;
}
