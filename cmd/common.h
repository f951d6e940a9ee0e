/* Shared by the subcommands: exit codes, the option tables that --help,
 * the man pages and the completions are checked against, and setting up
 * configuration and logging from flags. */
#ifndef MQTX_CMD_COMMON_H
#define MQTX_CMD_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

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
	char shrt;       /* 0: long only */
	const char *arg; /* metavariable, NULL for a flag */
	const char *key; /* config key set from the value ("true" for flags), or NULL */
	const char *help;
};

#define OPT_END                           \
	{                                 \
		NULL, 0, NULL, NULL, NULL \
	}

struct mqtx_cmd;

/* A command: its help, and the hooks the dispatcher in cmd/mqtx.c calls.
 * The dispatcher allocates args (args_size bytes, zeroed, then args_init),
 * parses argv into cli and args (on_opt), applies the command table's
 * flags (CMD_NO_ARGS, CMD_NEEDS_DB, ...), calls validate and then run, and
 * frees everything afterwards (args_free, the connection, cli). */
struct mqtx_cmd_info {
	const char *name;
	const char *synopsis;        /* after "mqtx NAME " */
	const char *summary;         /* one line */
	const struct mqtx_opt *opts; /* command options, OPT_END-terminated */
	const char *exit_codes;      /* one line per code */
	/* Optional: a command option (long name) whose value may hold a
	 * password, like --database-url and --broker-url. Parsing hides it
	 * from /proc/PID/cmdline and, when it holds one, warns with the text. */
	const char *secret_opt;
	const char *secret_warning;

	size_t args_size;              /* the command's own option values (struct), 0: none */
	void (*args_init)(void *args); /* optional: defaults before parsing */
	void (*args_free)(void *args); /* optional: what on_opt allocated */
	/* Options without a config key; non-zero fails (after printing the error). */
	int (*on_opt)(void *args, const char *lng, const char *value);
	/* Optional, before argv is parsed: an exit code, or -1 to go on
	 * (config --keys works even when the configuration is broken). */
	int (*before_parse)(int argc, char **argv);
	/* Optional: usage checks that need no server; non-zero is the exit code. */
	int (*validate)(struct mqtx_cmd *c);
	int (*run)(struct mqtx_cmd *c);
	/* Optional: the exit code when the preamble failed, with rc the usual
	 * code (usage, configuration) and err NULL, or with the error that
	 * stopped CMD_NEEDS_DB from connecting. Default: rc, or mqtx_fail(err). */
	int (*setup_failed)(struct mqtx_cmd *c, int rc, const struct mqtx_err *err);
	/* Optional, with CMD_NEEDS_BROKER: whether this run uses a broker at
	 * all (relay --dry-run does not). Default: it does. */
	bool (*needs_broker)(const struct mqtx_cmd *c);
};

/* The command table's flags (cmd/mqtx.c): what the dispatcher does for a command. */
enum mqtx_cmd_flags {
	CMD_LONG_RUNNING = 1 << 0, /* SIGHUP is logged and ignored (no reload yet) */
	CMD_NO_ARGS = 1 << 1,      /* a positional argument is a usage error */
	CMD_NEEDS_DB = 1 << 2,     /* connected to PostgreSQL ("mqtx NAME") after validate, before run */
	/* broker.url found in the broker registry after validate, before the
	 * database (a missing or unknown URL: exit 3, nothing touched), unless
	 * info->needs_broker says this run has no use for one; c->broker then
	 * says what the broker can do. The engines connect when they publish. */
	CMD_NEEDS_BROKER = 1 << 3,
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

struct pg_conn;          /* libpq's PGconn */
struct mqtx_backend_ops; /* broker/broker.h: what a broker can do */

/* A command being run: what the dispatcher parsed and opened for it. */
struct mqtx_cmd {
	const struct mqtx_cmd_info *info;
	struct mqtx_cli cli;
	void *args;         /* the command's struct (info->args_size bytes), filled by info->on_opt */
	struct pg_conn *db; /* CMD_NEEDS_DB: the connection, borrowed (the dispatcher closes it); else NULL */
	const struct mqtx_backend_ops *broker; /* CMD_NEEDS_BROKER: broker.url's backend (static); else NULL */
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
/* One help line per option: "  -c, --config FILE  help". */
void mqtx_cli_help_opts(FILE *out, const struct mqtx_opt *o);

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

#endif
