/* main: global options, the command table, dispatch. `mqtx CMD -h` needs
 * no database or broker: commands connect only after parsing. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "base/log.h"
#include "commands.h"
#include "common.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const struct mqtx_cmd_info *info;
	bool long_running; /* SIGHUP is logged and ignored */
};

static const struct command commands[] = {
	{"init", cmd_init, &cmd_init_info, false},
	{"relay", cmd_relay, &cmd_relay_info, true},
	{"check", cmd_check, &cmd_check_info, false},
	{"redeliver", cmd_redeliver, &cmd_redeliver_info, true},
	{"txpub", cmd_txpub, &cmd_txpub_info, true},
	{"dedupe-audit", cmd_dedupe_audit, &cmd_dedupe_audit_info, true},
	{"config", cmd_config, &cmd_config_info, false},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mqtx [common options] COMMAND [options]\n\n"
		"Reliable \"database change + message\": relays a PostgreSQL outbox table to\n"
		"RabbitMQ or Kafka without losing messages.\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].info->summary);
	fprintf(out, "\ncommon options (before or after COMMAND):\n");
	for (const struct mqtx_opt *o = mqtx_common_opts; o->lng != NULL; o++) {
		char left[64];
		if (o->shrt)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->shrt, o->lng, o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->lng, o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(out, "  %-28s %s\n", left, o->help);
	}
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

	mqtx_install_signals(cmd->long_running);
	int rc = cmd->fn(ac, av);
	free(av);

	/* Data goes to stdout: a failed write (full disk, closed pipe) must not pass silently. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		mqtx_error("cannot write to standard output: %s", strerror(errno));
		return rc == EXIT_OK ? EXIT_IO : rc;
	}
	return rc;
}
