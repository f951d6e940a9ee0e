/* Option parsing, help, exit codes and signals shared by all subcommands. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

const struct mqtx_opt mqtx_common_opts[] = {
	{"config", 'c', "FILE", NULL,
	 "configuration file (default: $MQTX_CONFIG, ./mqtx.yaml, ~/.config/mqtx/config.yaml, /etc/mqtx/config.yaml)"},
	{"database-url", 0, "URL", "database.url",
	 "PostgreSQL URL or conninfo (prefer MQTX_DATABASE_URL: argv is visible to other users)"},
	{"broker-url", 0, "URL", "broker.url",
	 "broker URL: amqp://, amqps://, kafka://, kafkas://, nats://, tls:// (NATS) (prefer MQTX_BROKER_URL)"},
	{"verbose", 'v', NULL, NULL, "debug diagnostics"},
	{"quiet", 'q', NULL, NULL, "only warnings and errors on stderr: no progress, no summaries"},
	{"log-format", 0, "FORMAT", "log.format", "diagnostics format: text or json"},
	{"help", 'h', NULL, NULL, "show this help and exit"},
	OPT_END,
};

volatile sig_atomic_t mqtx_stop = 0;

/* First SIGINT/SIGTERM: stop within the grace (1); second: stop at once
 * (2); third: die by the signal. */
static void on_signal(int sig)
{
	if (mqtx_stop >= 2) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	mqtx_stop = mqtx_stop + 1;
}

/* SIGHUP: the handler only writes a byte to a pipe (async-signal-safe);
 * a thread of its own reads it and logs that nothing was reloaded. */
static int hup_pipe[2] = {-1, -1};

static void on_hup(int sig)
{
	(void)sig;
	int saved = errno;
	char c = 'H';
	if (write(hup_pipe[1], &c, 1) < 0) { /* full: enough lines are on their way */
	}
	errno = saved;
}

static void *hup_main(void *arg)
{
	(void)arg;
	for (;;) {
		char c;
		ssize_t n = read(hup_pipe[0], &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		mqtx_warn(
			"SIGHUP ignored: reloading the configuration is not supported yet; going on with the settings read at start");
	}
}

static void ignore_hup(void)
{
	if (pipe(hup_pipe) < 0)
		return;
	fcntl(hup_pipe[1], F_SETFL, fcntl(hup_pipe[1], F_GETFL) | O_NONBLOCK);
	fcntl(hup_pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(hup_pipe[1], F_SETFD, FD_CLOEXEC);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread takes no signals */
	pthread_t t;
	bool ok = pthread_create(&t, NULL, hup_main, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ok)
		return;
	pthread_detach(t);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	sigaction(SIGHUP, &sa, NULL);
}

void mqtx_install_signals(bool long_running)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a blocking poll returns so we notice */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (long_running)
		ignore_hup();
}

int mqtx_exit_code(enum mqtx_err_kind kind)
{
	switch (kind) {
	case MQTX_OK: return EXIT_OK;
	case MQTX_E_USAGE: return EXIT_USAGE;
	case MQTX_E_CONFIG: return EXIT_CONFIG;
	case MQTX_E_DB: return EXIT_DB;
	case MQTX_E_BROKER: return EXIT_BROKER;
	case MQTX_E_INPUT: return EXIT_INPUT;
	case MQTX_E_IO: return EXIT_IO;
	case MQTX_E_INTERNAL: return EXIT_INTERNAL;
	}
	return EXIT_INTERNAL;
}

int mqtx_fail(const struct mqtx_err *err)
{
	mqtx_error("%s", err->msg);
	return mqtx_exit_code(err->kind);
}

void mqtx_log_early(int argc, char **argv)
{
	const char *env = getenv("MQTX_LOG_FORMAT");
	bool json = env != NULL && strcmp(env, "json") == 0;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--log-format=json") == 0)
			json = true;
		else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc)
			json = strcmp(argv[++i], "json") == 0;
	}
	if (json)
		mqtx_log_setup(MQTX_LOG_INFO, MQTX_LOG_JSON);
}

int mqtx_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (mqtx_log_get_format() == MQTX_LOG_JSON)
		mqtx_error("%s (try 'mqtx %s --help')", msg, cmd);
	else
		fprintf(stderr, "mqtx: %s\nTry 'mqtx %s --help'.\n", msg, cmd);
	return EXIT_USAGE;
}

void mqtx_cli_help_opts(FILE *out, const struct mqtx_opt *o)
{
	for (; o->lng != NULL; o++) {
		char left[64];
		if (o->shrt)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->shrt, o->lng, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->lng, o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(out, "  %-28s %s\n", left, o->help);
	}
}

void mqtx_cli_help(const struct mqtx_cmd_info *info)
{
	printf("usage: mqtx %s %s\n\n%s\n\noptions:\n", info->name, info->synopsis, info->summary);
	mqtx_cli_help_opts(stdout, info->opts);
	printf("\ncommon options:\n");
	mqtx_cli_help_opts(stdout, mqtx_common_opts);
	printf("\nexit status:\n%s\nSee mqtx-%s(1).\n", info->exit_codes, info->name);
}

static const struct mqtx_opt *find_opt(const struct mqtx_cmd_info *info, const char *lng)
{
	for (const struct mqtx_opt *o = mqtx_common_opts; o->lng != NULL; o++)
		if (strcmp(o->lng, lng) == 0)
			return o;
	for (const struct mqtx_opt *o = info->opts; o->lng != NULL; o++)
		if (strcmp(o->lng, lng) == 0)
			return o;
	return NULL;
}

/* Hides a password given on the command line from /proc/PID/cmdline:
 * the one place that does. */
static void scrub_arg(char *arg, const char *warning)
{
	char *r = mqtx_redact(arg);
	if (strcmp(r, arg) != 0) {
		mqtx_warn("%s", warning);
		size_t n = strlen(arg);
		size_t rl = strlen(r);
		memset(arg, 0, n);
		memcpy(arg, r, rl < n ? rl : n);
	}
	free(r);
}

/* An option as given, kept until the configuration is loaded: flags
 * beat the configuration file and the environment. */
struct pending_flag {
	const struct mqtx_opt *opt;
	char *value; /* owned; NULL for a flag handed to on_opt */
};

struct pending {
	struct pending_flag *flags;
	size_t n;
};

/* getopt_long's view of the common options and a command's: long option k
 * returns 256 + k. */
struct getopt_tables {
	struct option *lo;
	struct mqtx_buf shorts;
};

static void tables_build(const struct mqtx_cmd_info *info, struct getopt_tables *t)
{
	size_t nopts = 0, k = 0;
	for (const struct mqtx_opt *o = mqtx_common_opts; o->lng != NULL; o++)
		nopts++;
	for (const struct mqtx_opt *o = info->opts; o->lng != NULL; o++)
		nopts++;
	t->lo = mqtx_xcalloc(nopts + 1, sizeof(*t->lo));
	t->shorts = (struct mqtx_buf)MQTX_BUF_INIT;
	mqtx_buf_adds(&t->shorts, ":");
	for (int pass = 0; pass < 2; pass++) {
		for (const struct mqtx_opt *o = pass == 0 ? mqtx_common_opts : info->opts; o->lng != NULL; o++) {
			t->lo[k].name = o->lng;
			t->lo[k].has_arg = o->arg ? required_argument : no_argument;
			t->lo[k].flag = NULL;
			t->lo[k].val = 256 + (int)k;
			k++;
			if (o->shrt) {
				mqtx_buf_addc(&t->shorts, o->shrt);
				if (o->arg)
					mqtx_buf_addc(&t->shorts, ':');
			}
		}
	}
}

static void tables_free(struct getopt_tables *t)
{
	free(t->lo);
	mqtx_buf_free(&t->shorts);
}

/* The option behind getopt_long's answer c, or NULL. */
static const struct mqtx_opt *opt_of(const struct mqtx_cmd_info *info, const struct getopt_tables *t, int c)
{
	if (c >= 256)
		return find_opt(info, t->lo[c - 256].name);
	for (int pass = 0; pass < 2; pass++)
		for (const struct mqtx_opt *p = pass == 0 ? mqtx_common_opts : info->opts; p->lng != NULL; p++)
			if (p->shrt == c)
				return p;
	return NULL;
}

/* The usage error for getopt_long's '?' or ':', or for an unknown answer. */
static int getopt_error(const struct mqtx_cmd_info *info, int c, char **argv)
{
	if (c == '?' && optopt != 0)
		return mqtx_usage_error(info->name, "unknown option '-%c'", optopt);
	if (c == '?')
		return mqtx_usage_error(info->name, "unknown option '%s'", argv[optind - 1]);
	if (c == ':')
		return mqtx_usage_error(info->name, "option '%s' needs a value", argv[optind - 1]);
	return mqtx_usage_error(info->name, "unknown option");
}

/* Notes one option: the few the parser handles itself go into cli; the
 * others are copied into p (a config key, or for on_opt); a URL that may
 * hold a password is scrubbed from argv after the copy. Returns -1 for
 * --help. */
static int take_opt(const struct mqtx_cmd_info *info, const struct mqtx_opt *o, bool want_others, struct mqtx_cli *cli,
		    struct pending *p)
{
	if (strcmp(o->lng, "help") == 0)
		return -1;
	if (strcmp(o->lng, "config") == 0) {
		cli->config_path = optarg;
	} else if (strcmp(o->lng, "verbose") == 0) {
		cli->verbosity++;
	} else if (strcmp(o->lng, "quiet") == 0) {
		cli->verbosity = -1;
	} else if (o->key != NULL) {
		p->flags[p->n].value = mqtx_xstrdup(o->arg ? optarg : "true");
		p->flags[p->n++].opt = o;
	} else if (want_others) {
		p->flags[p->n].opt = o;
		p->flags[p->n++].value = o->arg ? mqtx_xstrdup(optarg) : NULL;
	}
	if (strcmp(o->lng, "database-url") == 0 || strcmp(o->lng, "broker-url") == 0)
		scrub_arg(optarg, "a password was given on the command line, where other local users can see it; "
				  "use MQTX_DATABASE_URL/MQTX_BROKER_URL, a config file or password_file instead");
	else if (info->secret_opt != NULL && strcmp(o->lng, info->secret_opt) == 0)
		scrub_arg(optarg, info->secret_warning);
	return 0;
}

/* Reads argv: options into cli and p, positional arguments into cli.
 * Returns 0, -1 after showing --help, or an exit code after the error. */
static int scan_argv(const struct mqtx_cmd_info *info, int argc, char **argv, bool want_others, struct mqtx_cli *cli,
		     struct pending *p)
{
	struct getopt_tables t;
	int rc = 0, c, li;

	tables_build(info, &t);
	optind = 1;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, t.shorts.data, t.lo, &li)) != -1) {
		const struct mqtx_opt *o = c == '?' || c == ':' ? NULL : opt_of(info, &t, c);
		if (o == NULL)
			rc = getopt_error(info, c, argv);
		else if (take_opt(info, o, want_others, cli, p) < 0)
			rc = -1;
	}
	tables_free(&t);
	if (rc == -1)
		mqtx_cli_help(info);
	cli->args = argv + optind;
	cli->nargs = argc - optind;
	return rc;
}

/* Logging before the configuration is read, so that its errors already
 * follow --log-format and --quiet/--verbose. */
static void log_setup_early(const struct mqtx_cli *cli, const struct pending *p)
{
	enum mqtx_log_format early = mqtx_log_get_format(); /* see mqtx_log_early */
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->flags[i].opt->lng, "log-format") == 0)
			early = strcmp(p->flags[i].value, "json") == 0 ? MQTX_LOG_JSON : MQTX_LOG_TEXT;
	/* --quiet hides progress and summaries (info), never a warning or an error */
	mqtx_log_setup(cli->verbosity < 0 ? MQTX_LOG_WARN : cli->verbosity > 0 ? MQTX_LOG_DEBUG : MQTX_LOG_INFO, early);
}

/* The effective log settings: flags beat the configuration. */
static void log_setup(const struct mqtx_cli *cli)
{
	enum mqtx_log_level lvl = MQTX_LOG_INFO;
	const char *ll = cli->cfg->log_level;
	if (strcmp(ll, "error") == 0)
		lvl = MQTX_LOG_ERROR;
	else if (strcmp(ll, "warning") == 0)
		lvl = MQTX_LOG_WARN;
	else if (strcmp(ll, "debug") == 0)
		lvl = MQTX_LOG_DEBUG;
	if (cli->verbosity < 0 && lvl != MQTX_LOG_ERROR)
		lvl = MQTX_LOG_WARN;
	else if (cli->verbosity > 0)
		lvl = MQTX_LOG_DEBUG;
	mqtx_log_setup(lvl, strcmp(cli->cfg->log_format, "json") == 0 ? MQTX_LOG_JSON : MQTX_LOG_TEXT);
}

/* Sets the flags' config keys over the loaded configuration and hands the
 * other options to on_opt, in the order given. Returns 0 or an exit code. */
static int apply_flags(const struct mqtx_cmd_info *info, struct mqtx_cli *cli, const struct pending *p,
		       int (*on_opt)(void *ctx, const char *lng, const char *value), void *ctx)
{
	struct mqtx_err err;
	for (size_t i = 0; i < p->n; i++) {
		const struct mqtx_opt *o = p->flags[i].opt;
		if (o->key != NULL) {
			char origin[96];
			snprintf(origin, sizeof(origin), "option --%s", o->lng);
			if (mqtx_config_set(cli->cfg, o->key, p->flags[i].value, origin, &err) < 0)
				return mqtx_usage_error(info->name, "%s", err.msg);
		} else if (on_opt(ctx, o->lng, p->flags[i].value) != 0) {
			return EXIT_USAGE;
		}
	}
	return 0;
}

/* The values handed to on_opt stay in cli (they live until
 * mqtx_cli_free); those copied into the configuration are wiped. */
static void pending_finish(struct mqtx_cli *cli, struct pending *p)
{
	cli->values = mqtx_xcalloc(p->n + 1, sizeof(char *));
	for (size_t i = 0; i < p->n; i++) {
		if (p->flags[i].value == NULL)
			continue;
		if (p->flags[i].opt->key != NULL) {
			explicit_bzero(p->flags[i].value, strlen(p->flags[i].value));
			free(p->flags[i].value);
		} else {
			cli->values[cli->nvalues++] = p->flags[i].value;
		}
	}
	free(p->flags);
}

int mqtx_cli_parse(const struct mqtx_cmd_info *info, int argc, char **argv, struct mqtx_cli *cli,
		   int (*on_opt)(void *ctx, const char *lng, const char *value), void *ctx)
{
	struct pending p = {mqtx_xcalloc((size_t)argc + 1, sizeof(*p.flags)), 0};
	struct mqtx_err err;

	memset(cli, 0, sizeof(*cli));
	int rc = scan_argv(info, argc, argv, on_opt != NULL, cli, &p);
	if (rc != 0)
		goto out;
	log_setup_early(cli, &p);
	cli->cfg = mqtx_config_new();
	if (mqtx_config_load(cli->cfg, cli->config_path, &err) < 0) {
		rc = mqtx_fail(&err);
		goto out;
	}
	if ((rc = apply_flags(info, cli, &p, on_opt, ctx)) != 0)
		goto out;
	if (mqtx_config_validate(cli->cfg, &err) < 0) {
		rc = mqtx_fail(&err);
		goto out;
	}
	log_setup(cli);
out:
	pending_finish(cli, &p);
	if (rc != 0)
		mqtx_cli_free(cli);
	return rc;
}

void mqtx_cli_free(struct mqtx_cli *cli)
{
	mqtx_config_free(cli->cfg);
	cli->cfg = NULL;
	for (size_t i = 0; i < cli->nvalues; i++)
		free(cli->values[i]);
	free(cli->values);
	cli->values = NULL;
	cli->nvalues = 0;
}
