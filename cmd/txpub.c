/* mqtx txpub: publish from shell scripts with a clear answer (published,
 * not published, or unknown); half messages through the outbox; and
 * PostgreSQL PREPARE TRANSACTION as a last-resource commit. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "txpub/input.h"
#include "base/log.h"
#include "db/pg.h"
#include "render/txpub.h"
#include "txpub/txpub.h"
#include "base/util.h"
#include "commands.h"

/* txpub's own exit codes (besides 0, 2, 3, 4, 6 and 7 of common.h). */
enum {
	EXIT_NOT_PUBLISHED = 10,
	EXIT_PARTIAL = 11,
	EXIT_UNKNOWN = 12,
	EXIT_CONFLICT = 13,
};

static const struct mqtx_opt txpub_opts[] = {
	{"destination", 'd', "NAME", NULL,
	 "exchange (AMQP, '' = default exchange), topic (Kafka) or subject (NATS) of the messages"},
	{"routing-key", 'r', "KEY", NULL,
	 "routing key (AMQP), record key (Kafka) or subject suffix (NATS: subject DESTINATION.KEY)"},
	{"header", 'H', "NAME=VALUE", NULL, "a message header (repeatable)"},
	{"key", 'k', "KEY", NULL, "idempotency key of the one message (default: derived, see mqtx-keys(7))"},
	{"ordering-key", 0, "KEY", NULL, "ordering key (Kafka: picks the partition; outbox: delivery order)"},
	{"content-type", 0, "TYPE", NULL, "MIME type of the payloads"},
	{"payload", 'p', "TEXT", NULL, "a message with payload TEXT (repeatable; stdin is not read then)"},
	{"payload-file", 'F', "FILE", NULL, "a message with the bytes of FILE, - for stdin (repeatable)"},
	{"format", 'f', "FORMAT", NULL, "stdin format: lines (default), jsonl or raw"},
	{"null", '0', NULL, NULL, "stdin records end with NUL bytes, not newlines (lines, jsonl)"},
	{"mode", 'm', "MODE", "txpub.mode", "auto (default), tx, confirm or kafka-tx"},
	{"confirm", 0, "HOW", "txpub.confirm", "--mode confirm: sync, batch or async (default)"},
	{"batch", 'b', "N", "txpub.batch_size", "messages per transaction or confirm batch (0, the default: all)"},
	{"report", 0, "FILE", NULL, "write a JSON report: per message and batch, confirmed, not_published or in_doubt"},
	{"prepare", 0, NULL, NULL, "store half messages (status prepared) in the outbox and print their keys"},
	{"commit", 0, NULL, NULL, "commit the half messages KEY...: the relay sends them"},
	{"rollback", 0, NULL, NULL, "roll back the half messages KEY..."},
	{"sql", 0, "FILE", NULL, "run FILE (- = stdin) in a transaction, PREPARE it, publish, COMMIT PREPARED"},
	{"schema", 0, "NAME", "outbox.schema", "schema of the outbox table (--prepare, --commit, --rollback, --sql)"},
	{"table", 't', "NAME", "outbox.table", "outbox table name (--prepare, --commit, --rollback, --sql)"},
	OPT_END,
};

enum op { OP_PUBLISH, OP_PREPARE, OP_COMMIT, OP_ROLLBACK, OP_SQL };

struct source {
	bool file;
	const char *value;
};

struct txpub_args {
	enum op op;
	int n_ops;
	const char *destination, *routing_key, *key, *ordering_key, *content_type;
	const char *format;
	bool nul;
	const char *report;
	const char *sql_file;
	struct source *sources; /* --payload / --payload-file in order */
	size_t n_sources;
	char **header_args;
	size_t n_header_args;
	bool message_opts; /* any option that describes messages */
};

static void args_free(void *ctx);
static int on_opt(void *ctx, const char *lng, const char *value);
static int run(struct mqtx_cmd *c);

const struct mqtx_cmd_info cmd_txpub_info = {
	.name = "txpub",
	.synopsis = "[options] [--prepare | --sql FILE] [< messages]  |  --commit KEY...  |  --rollback KEY...",
	.summary = "publish from scripts with a clear answer: published, not published, or unknown",
	.opts = txpub_opts,
	.exit_codes =
		"  0  all messages published and confirmed (--prepare: stored; --commit, --rollback: done)\n"
		"  2  usage error (e.g. a --mode the broker cannot do): nothing was published\n"
		"  3  configuration error (e.g. a txpub.mode the broker cannot do): nothing was published\n"
		"  4  database unreachable or failing: nothing was published or changed\n"
		"  6  bad input, found before anything was sent (invalid JSON, too large, duplicate keys, ...)\n"
		"  7  cannot write standard output or the report\n"
		" 10  nothing was published: refused, rolled back or broker unreachable (--sql: database rolled back)\n"
		" 11  partial: some batches (messages) confirmed, the rest not published\n"
		" 12  outcome unknown for some messages (their keys are on stderr): run the same command again\n"
		" 13  the half message was already resolved the other way (--commit of a rolled-back one, ...)",
	.args_size = sizeof(struct txpub_args),
	.args_free = args_free,
	.on_opt = on_opt,
	.run = run,
};

static void args_free(void *ctx)
{
	struct txpub_args *a = ctx;
	free(a->sources);
	free(a->header_args);
}

static int on_opt(void *ctx, const char *lng, const char *value)
{
	struct txpub_args *a = ctx;
	if (strcmp(lng, "destination") == 0) {
		a->destination = value;
	} else if (strcmp(lng, "routing-key") == 0) {
		a->routing_key = value;
	} else if (strcmp(lng, "key") == 0) {
		a->key = value;
	} else if (strcmp(lng, "ordering-key") == 0) {
		a->ordering_key = value;
	} else if (strcmp(lng, "content-type") == 0) {
		a->content_type = value;
	} else if (strcmp(lng, "header") == 0) {
		a->header_args = mqtx_xrealloc(a->header_args, (a->n_header_args + 1) * sizeof(char *));
		a->header_args[a->n_header_args++] = (char *)value;
	} else if (strcmp(lng, "payload") == 0 || strcmp(lng, "payload-file") == 0) {
		a->sources = mqtx_xrealloc(a->sources, (a->n_sources + 1) * sizeof(*a->sources));
		a->sources[a->n_sources].file = lng[7] == '-';
		a->sources[a->n_sources++].value = value;
	} else if (strcmp(lng, "format") == 0) {
		a->format = value;
	} else if (strcmp(lng, "null") == 0) {
		a->nul = true;
	} else if (strcmp(lng, "report") == 0) {
		a->report = value;
		return 0;
	} else if (strcmp(lng, "prepare") == 0 || strcmp(lng, "commit") == 0 || strcmp(lng, "rollback") == 0 ||
		   strcmp(lng, "sql") == 0) {
		a->op = lng[0] == 'p' ? OP_PREPARE : lng[0] == 'c' ? OP_COMMIT : lng[0] == 'r' ? OP_ROLLBACK : OP_SQL;
		if (a->op == OP_SQL)
			a->sql_file = value;
		a->n_ops++;
		return 0;
	}
	a->message_opts = true;
	return 0;
}

static const char *op_name(enum op op)
{
	static const char *const names[] = {"publish", "--prepare", "--commit", "--rollback", "--sql"};
	return names[op];
}

/* --header NAME=VALUE into input headers (owned by the caller's array). */
static int parse_headers(const struct txpub_args *a, struct mqtx_input_header **out)
{
	*out = mqtx_xcalloc(a->n_header_args + 1, sizeof(**out));
	for (size_t i = 0; i < a->n_header_args; i++) {
		const char *arg = a->header_args[i];
		const char *eq = strchr(arg, '=');
		if (eq == NULL)
			return mqtx_usage_error("txpub", "--header '%s': expected NAME=VALUE", arg);
		const char *bad = mqtx_input_bad_header_name(arg, (size_t)(eq - arg));
		if (bad != NULL)
			return mqtx_usage_error("txpub", "--header '%s': %s", arg, bad);
		for (size_t j = 0; j < i; j++)
			if (strncmp((*out)[j].name, arg, (size_t)(eq - arg)) == 0 && (*out)[j].name[eq - arg] == '\0')
				return mqtx_usage_error("txpub", "--header '%.*s' is given twice", (int)(eq - arg),
							arg);
		(*out)[i].name = mqtx_xstrndup(arg, (size_t)(eq - arg));
		(*out)[i].value = mqtx_xstrdup(eq + 1);
		(*out)[i].value_len = strlen(eq + 1);
	}
	return 0;
}

static void free_headers(struct mqtx_input_header *h, size_t n)
{
	for (size_t i = 0; h != NULL && i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

/* Reads the messages: from --payload/--payload-file, or stdin. */
static int read_input(const struct txpub_args *a, const struct mqtx_config *cfg, struct mqtx_input *in,
		      struct mqtx_err *err)
{
	uint64_t max = (uint64_t)cfg->txpub_max_payload;
	if (a->n_sources > 0) {
		for (size_t i = 0; i < a->n_sources; i++) {
			const struct source *s = &a->sources[i];
			int rc;
			if (s->file) {
				rc = mqtx_input_add_file(in, s->value, max, err);
			} else {
				char where[32];
				snprintf(where, sizeof(where), "--payload #%zu", i + 1);
				rc = mqtx_input_add_payload(in, where, s->value, strlen(s->value), max, err);
			}
			if (rc < 0)
				return -1;
		}
		return 0;
	}
	struct mqtx_input_opts io = {.delim = a->nul ? '\0' : '\n', .max_payload = max, .name = "stdin"};
	const char *f = a->format != NULL ? a->format : "lines";
	io.format = strcmp(f, "jsonl") == 0 ? MQTX_INPUT_JSONL
		    : strcmp(f, "raw") == 0 ? MQTX_INPUT_RAW
					    : MQTX_INPUT_LINES;
	if (isatty(0))
		mqtx_info("reading messages from the terminal (%s; end with Ctrl-D)", f);
	return mqtx_input_read_fd(in, 0, &io, err);
}

/* The exit code of what happened to the messages. */
static int code_from_counts(const struct mqtx_txpub_set *s)
{
	switch (mqtx_txpub_verdict(s)) {
	case MQTX_TXPUB_ALL_CONFIRMED: return EXIT_OK;
	case MQTX_TXPUB_IN_DOUBT: return EXIT_UNKNOWN;
	case MQTX_TXPUB_NONE_PUBLISHED: return EXIT_NOT_PUBLISHED;
	case MQTX_TXPUB_PARTIAL: break;
	}
	return EXIT_PARTIAL;
}

/* The exit status in the words of the report. */
static const char *outcome(int rc, enum op op)
{
	switch (rc) {
	case EXIT_OK: return op == OP_PREPARE ? "prepared" : "published";
	case EXIT_NOT_PUBLISHED: return "not_published";
	case EXIT_PARTIAL: return "partial";
	case EXIT_UNKNOWN: return "in_doubt";
	case EXIT_CONFLICT: return "conflict";
	default: return "error";
	}
}

static int parse_mode(const struct mqtx_config *cfg, struct mqtx_txpub_opts *o)
{
	const char *m = cfg->txpub_mode;
	o->mode = strcmp(m, "tx") == 0         ? MQTX_TXPUB_TX
		  : strcmp(m, "confirm") == 0  ? MQTX_TXPUB_CONFIRM
		  : strcmp(m, "kafka-tx") == 0 ? MQTX_TXPUB_KAFKA_TX
					       : MQTX_TXPUB_AUTO;
	const char *c = cfg->txpub_confirm;
	o->confirm = strcmp(c, "sync") == 0    ? MQTX_TXPUB_SYNC
		     : strcmp(c, "batch") == 0 ? MQTX_TXPUB_BATCH
					       : MQTX_TXPUB_ASYNC;
	o->window = (size_t)cfg->txpub_confirm_window;
	o->stop = &mqtx_stop;
	o->stop_grace_ms = 5000;
	return 0;
}

static int check_usage(const struct txpub_args *a, const struct mqtx_cli *cli)
{
	if (a->n_ops > 1)
		return mqtx_usage_error("txpub", "--prepare, --commit, --rollback and --sql exclude each other");
	bool keys_op = a->op == OP_COMMIT || a->op == OP_ROLLBACK;
	if (keys_op && cli->nargs == 0)
		return mqtx_usage_error("txpub", "%s needs the keys of the half messages as arguments", op_name(a->op));
	if (keys_op && (a->message_opts || a->report != NULL))
		return mqtx_usage_error("txpub", "%s takes only keys; message options do not apply", op_name(a->op));
	if (!keys_op && cli->nargs > 0)
		return mqtx_usage_error("txpub", "unexpected argument '%s' (payloads go in --payload or on stdin)",
					cli->args[0]);
	if (a->format != NULL && strcmp(a->format, "lines") != 0 && strcmp(a->format, "jsonl") != 0 &&
	    strcmp(a->format, "raw") != 0)
		return mqtx_usage_error("txpub", "--format '%s': expected lines, jsonl or raw", a->format);
	if (a->nul && a->format != NULL && strcmp(a->format, "raw") == 0)
		return mqtx_usage_error("txpub", "-0 does not apply to --format raw (the whole input is one message)");
	if (a->n_sources > 0 && (a->format != NULL || a->nul))
		return mqtx_usage_error("txpub",
					"--format and -0 describe stdin, which is not read with --payload or --payload-file");
	bool stdin_payload = false;
	for (size_t i = 0; i < a->n_sources; i++)
		if (a->sources[i].file && strcmp(a->sources[i].value, "-") == 0) {
			if (stdin_payload)
				return mqtx_usage_error("txpub",
							"--payload-file - is given twice (stdin can be read once)");
			stdin_payload = true;
		}
	if (a->op == OP_SQL && strcmp(a->sql_file, "-") == 0 && (a->n_sources == 0 || stdin_payload))
		return mqtx_usage_error("txpub",
					"--sql - reads the SQL from stdin: give the messages with --payload or --payload-file FILE");
	return 0;
}

static int run_keys_op(struct txpub_args *a, struct mqtx_cli *cli)
{
	struct mqtx_err err;
	bool commit = a->op == OP_COMMIT;
	PGconn *conn = mqtx_pg_connect(cli->cfg, "mqtx txpub", &err);
	if (conn == NULL)
		return mqtx_fail(&err);
	struct mqtx_half_key *keys = mqtx_xcalloc((size_t)cli->nargs + 1, sizeof(*keys));
	for (int i = 0; i < cli->nargs; i++)
		keys[i].key = cli->args[i];
	int r = mqtx_txpub_finish_half(conn, cli->cfg, commit, keys, (size_t)cli->nargs, &err);
	int rc = EXIT_OK;
	if (r < 0) {
		rc = mqtx_fail(&err);
	} else if (r == MQTX_HALF_CONFLICT) {
		for (int i = 0; i < cli->nargs; i++) {
			const char *b = keys[i].before;
			if (commit && strcmp(b, "rolled_back") == 0)
				mqtx_error("cannot commit half message '%s': it was rolled back", keys[i].key);
			else if (!commit && b[0] != '\0' && strcmp(b, "prepared") != 0 && strcmp(b, "rolled_back") != 0)
				mqtx_error("cannot roll back half message '%s': it was committed (status %s)",
					   keys[i].key, b);
		}
		mqtx_error("nothing was changed");
		rc = EXIT_CONFLICT;
	} else if (r == MQTX_HALF_MISSING) {
		for (int i = 0; i < cli->nargs; i++)
			if (keys[i].before[0] == '\0')
				mqtx_error("no half message with key '%s' in the outbox", keys[i].key);
		mqtx_error("nothing was changed");
		rc = EXIT_INPUT;
	}
	free(keys);
	mqtx_pg_close(conn);
	return rc;
}

static int run_prepare(struct mqtx_txpub_set *s, struct mqtx_cli *cli, int *code)
{
	struct mqtx_err err;
	PGconn *conn = mqtx_pg_connect(cli->cfg, "mqtx txpub", &err);
	if (conn == NULL) {
		*code = mqtx_fail(&err);
		return 0;
	}
	int r = mqtx_txpub_prepare(conn, cli->cfg, s, &err);
	mqtx_pg_close(conn);
	if (r < 0) {
		for (size_t i = 0; i < s->n; i++)
			s->msgs[i].state = MQTX_MSG_PENDING;
		*code = mqtx_fail(&err);
		return 0;
	}
	*code = EXIT_OK;
	for (size_t i = 0; i < s->n; i++) {
		const char *st = s->status[i];
		if (strcmp(st, "rolled_back") == 0) {
			mqtx_error("%s: half message '%s' was rolled back earlier; give it a new key", s->where[i],
				   s->msgs[i].key);
			*code = EXIT_CONFLICT;
		} else if (strcmp(st, "prepared") != 0) {
			mqtx_info("%s: half message '%s' was committed earlier (status %s)", s->where[i],
				  s->msgs[i].key, st);
		}
	}
	struct mqtx_render out;
	mqtx_render_init_file(&out, stdout, false);
	mqtx_render_txpub_keys(&out, s);
	mqtx_render_finish(&out); /* a failed write: main() says so, exit 7 */
	return 0;
}

/* --sql: *tried is set once the transaction was tried (r tells how it ended). */
static int run_sql(struct mqtx_txpub_set *s, struct mqtx_cli *cli, const struct mqtx_txpub_opts *o, const char *file,
		   struct mqtx_sql_result *r, bool *tried)
{
	struct mqtx_err err;
	mqtx_err_clear(&err);
	struct mqtx_input sqlin = {0};
	if (mqtx_input_add_file(&sqlin, file, UINT64_MAX, &err) < 0) {
		mqtx_input_free(&sqlin);
		return mqtx_fail(&err);
	}
	const char *sql = sqlin.msgs[0].payload;
	if (strlen(sql) != sqlin.msgs[0].payload_len) {
		mqtx_input_free(&sqlin);
		mqtx_error("the SQL in '%s' contains a NUL byte", file);
		return EXIT_INPUT;
	}
	int rc = mqtx_txpub_sql(cli->cfg, o, sql, s, r, &err);
	mqtx_input_free(&sqlin);
	*tried = true;
	if (rc < 0)
		mqtx_error("%s", err.msg);
	switch (r->outcome) {
	case MQTX_SQL_ROLLED_BACK:
		/* bad input or configuration, or the database gone before the SQL ran: the usual codes */
		if (rc < 0 && (!r->ran || err.kind == MQTX_E_INPUT || err.kind == MQTX_E_CONFIG))
			return mqtx_exit_code(err.kind);
		mqtx_render_txpub_problems(s, "--sql");
		mqtx_warn("transaction '%s' rolled back: nothing was published", r->gid);
		return EXIT_NOT_PUBLISHED;
	case MQTX_SQL_IN_DOUBT:
		mqtx_error("transaction '%s' is in doubt (prepared, neither committed nor rolled back); 'mqtx check --resolve' decides",
			   r->gid);
		mqtx_render_txpub_problems(s, "--sql");
		return EXIT_UNKNOWN;
	case MQTX_SQL_DONE_BEFORE:
		mqtx_info("transaction '%s' was committed by an earlier run; nothing was run again", r->gid);
		mqtx_render_txpub_problems(s, "--sql");
		return code_from_counts(s);
	case MQTX_SQL_COMMITTED: break;
	}
	mqtx_render_txpub_problems(s, "--sql");
	int code = code_from_counts(s);
	if (code != EXIT_OK)
		mqtx_warn("transaction '%s' is committed; the messages not confirmed stay in the outbox, where the relay publishes them",
			  r->gid);
	return code;
}

/* What a run builds on its way to the answer; the report shows it. */
struct txpub_run {
	struct mqtx_input_header *headers;
	struct mqtx_input in;
	struct mqtx_txpub_set *s; /* NULL until the messages are read and checked */
	struct mqtx_txpub_opts o;
	enum mqtx_txpub_mode eff;   /* the mode publishing uses */
	const char *mode_name;      /* its name, "" for outbox operations */
	struct mqtx_sql_result sql; /* --sql, once sql_tried */
	bool sql_tried;
};

/* The messages: headers, the mode, the input, each message checked and
 * keyed. Returns 0 or an exit code after the error. */
static int build_set(const struct txpub_args *a, const struct mqtx_config *cfg, struct txpub_run *t)
{
	struct mqtx_err err;
	int rc = parse_headers(a, &t->headers);
	if (rc != 0)
		return rc;
	parse_mode(cfg, &t->o);
	t->eff = t->o.mode;
	if (a->op == OP_PUBLISH || a->op == OP_SQL) {
		if (mqtx_txpub_effective_mode(cfg, t->o.mode, a->op == OP_SQL, &t->eff, &err) < 0)
			return mqtx_fail(&err);
		t->mode_name = mqtx_txpub_mode_name(t->eff);
	}
	if (read_input(a, cfg, &t->in, &err) < 0)
		return mqtx_fail(&err);
	const struct mqtx_backend_ops *ops = cfg->broker_url != NULL ? mqtx_backend_find(cfg->broker_url, &err) : NULL;
	struct mqtx_txpub_defaults d = {
		.destination = a->destination,
		.routing_key = a->routing_key,
		.ordering_key = a->ordering_key,
		.content_type = a->content_type,
		.key = a->key,
		.headers = t->headers,
		.n_headers = a->n_header_args,
		.batch_size = a->op == OP_PUBLISH ? (size_t)cfg->txpub_batch_size : 0,
		.max_key_len = a->op == OP_SQL ? 194 : 255,
		.ops = ops,
	};
	t->s = mqtx_txpub_set_new(&t->in, &d, &err);
	return t->s == NULL ? mqtx_fail(&err) : 0;
}

static int publish(const struct mqtx_config *cfg, struct txpub_run *t)
{
	struct mqtx_err err;
	t->o.mode = t->eff;
	if (mqtx_txpub_publish(cfg, &t->o, t->s, &err) < 0) {
		mqtx_error("%s", err.msg);
		if (err.kind == MQTX_E_CONFIG)
			return EXIT_CONFIG;
	}
	mqtx_render_txpub_problems(t->s, t->eff == MQTX_TXPUB_CONFIRM ? "confirm" : t->mode_name);
	return code_from_counts(t->s);
}

/* --report FILE: what became of every message, and the exit status rc. */
static int report(const struct txpub_args *a, const struct txpub_run *t, int rc)
{
	struct mqtx_txpub_report rep = {
		.operation = a->op == OP_PREPARE ? "prepare"
			     : a->op == OP_SQL   ? "sql"
						 : "publish",
		.mode = t->mode_name,
		.exit_code = rc,
		.outcome = t->s != NULL ? outcome(rc, a->op) : "not_published", /* stopped before there were messages */
		.set = t->s,
		.sql = t->sql_tried ? &t->sql : NULL,
	};
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_txpub_report(&r, &rep);
	struct mqtx_err err;
	int w = mqtx_render_write_file(a->report, "the report", r.b.data, r.b.len, &err);
	if (w < 0)
		mqtx_error("%s", err.msg);
	mqtx_render_free(&r);
	return w;
}

static int run(struct mqtx_cmd *c)
{
	struct txpub_args *a = c->args;
	struct mqtx_cli *cli = &c->cli;
	struct txpub_run t = {.mode_name = ""};

	int rc = check_usage(a, cli);
	if (rc == 0 && (a->op == OP_COMMIT || a->op == OP_ROLLBACK))
		return run_keys_op(a, cli);
	if (rc == 0)
		rc = build_set(a, cli->cfg, &t);
	if (rc == 0) {
		switch (a->op) {
		case OP_PREPARE: run_prepare(t.s, cli, &rc); break;
		case OP_SQL: rc = run_sql(t.s, cli, &t.o, a->sql_file, &t.sql, &t.sql_tried); break;
		default: rc = publish(cli->cfg, &t); break;
		}
	}
	if (a->report != NULL && a->op != OP_COMMIT && a->op != OP_ROLLBACK && report(a, &t, rc) < 0 && rc == EXIT_OK)
		rc = EXIT_IO;
	mqtx_txpub_set_free(t.s);
	mqtx_input_free(&t.in);
	free_headers(t.headers, a->n_header_args);
	return rc;
}
