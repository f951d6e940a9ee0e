/* Shared by the subcommands: exit codes, the option tables that --help,
 * the man pages and the completions are checked against, and setting up
 * configuration and logging from flags. */
#ifndef MQTX_CMD_COMMON_H
#define MQTX_CMD_COMMON_H

#include <signal.h>
#include <stdbool.h>

#include "config/config.h"
#include "base/error.h"

#define MQTX_VERSION "0.1.0"

enum mqtx_exit {
	EXIT_OK = 0,
	EXIT_ROWS_FAILED = 1, /* relay: some rows failed (retried later or dead) */
	EXIT_USAGE = 2,
	EXIT_CONFIG = 3,
	EXIT_DB = 4,
	EXIT_BROKER = 5,
	EXIT_INPUT = 6,
	EXIT_IO = 7,
	EXIT_INTERNAL = 70,
};

/* One command-line option. `key` names the config key the option sets
 * (value as given); options without a key are handled by the command. */
struct mqtx_opt {
	const char *lng;
	char shrt;         /* 0: long only */
	const char *arg;   /* metavariable, NULL for a flag */
	const char *key;   /* config key set from the value ("true" for flags), or NULL */
	const char *help;
};

#define OPT_END {NULL, 0, NULL, NULL, NULL}

struct mqtx_cmd_info {
	const char *name;
	const char *synopsis;     /* after "mqtx NAME " */
	const char *summary;      /* one line */
	const struct mqtx_opt *opts; /* command options, OPT_END-terminated */
	const char *exit_codes;   /* one line per code */
};

/* The result of parsing: config (owned) and what the command must handle. */
struct mqtx_cli {
	struct mqtx_config *cfg;
	const char *config_path;
	int verbosity;
	const char *log_format;
	char **args; /* positional arguments, borrowed from argv */
	int nargs;
	char **values; /* option values handed to on_opt: live until mqtx_cli_free */
	size_t nvalues;
};

extern const struct mqtx_opt mqtx_common_opts[];

/* Parses argv for a command: common options, then the command's options.
 * For each option without a key, calls on_opt(ctx, lng, value) (value
 * lives until mqtx_cli_free); non-zero from on_opt fails (it prints its
 * own error).
 * Loads the configuration (file, env), then applies flags. Returns 0, or
 * an exit code after printing the error. -1 means --help was shown. */
int mqtx_cli_parse(const struct mqtx_cmd_info *info, int argc, char **argv, struct mqtx_cli *cli,
		   int (*on_opt)(void *ctx, const char *lng, const char *value), void *ctx);
void mqtx_cli_free(struct mqtx_cli *cli);

/* Prints the --help text of a command to stdout. */
void mqtx_cli_help(const struct mqtx_cmd_info *info);

/* Maps an error to the exit code and prints "mqtx: <msg>" on stderr. */
int mqtx_fail(const struct mqtx_err *err);
int mqtx_exit_code(enum mqtx_err_kind kind);
/* Before any parsing: --log-format json (or MQTX_LOG_FORMAT=json) anywhere
 * in argv makes even the first usage errors JSON lines. */
void mqtx_log_early(int argc, char **argv);
/* Prints a usage error and returns EXIT_USAGE. */
int mqtx_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* SIGINT/SIGTERM set this: 1 after the first (stop within the grace), 2
 * after the second (stop at once); a third ends the process by the signal.
 * long_running: SIGHUP is logged and otherwise ignored (no reload yet). */
extern volatile sig_atomic_t mqtx_stop;
void mqtx_install_signals(bool long_running);

/* Global-option pre-pass in main (before the command name). */
int mqtx_global_parse(int *argc, char ***argv, char ***global_argv, int *global_argc);

#endif
