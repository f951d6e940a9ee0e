/* mqtx check: the health of one outbox as data. mqtx_check_run looks at
 * the outbox (counts, ages, dead rows, blocked ordering keys), the relay
 * heartbeats, txpub's in-doubt items, the table's size and what retention
 * deletes next, optionally the broker and consumer completion, and judges every finding against the check.* thresholds;
 * mqtx_check_explain tells the story of one message. Nothing here prints:
 * lib/render/check.h renders the report (a table, JSON or Prometheus
 * text); the report carries every verdict and the thresholds behind them,
 * so a renderer only shows what is there.
 *
 * mqtx_check_run is a snapshot (the SQL is in lib/db/check.c, which says
 * what it costs), the broker's and txpub's answers, then the rules
 * (mqtx_check_rules), each a small function of the report. */
#ifndef MQTX_CHECK_H
#define MQTX_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "config/config.h"
#include "db/check.h"
#include "db/pg.h"
#include "txpub/txpub.h"

/* Nagios levels; also the exit codes of mqtx check. */
enum mqtx_check_level {
	MQTX_CHECK_OK = 0,
	MQTX_CHECK_WARNING = 1,
	MQTX_CHECK_CRITICAL = 2,
	MQTX_CHECK_UNKNOWN = 3,
};
const char *mqtx_check_level_name(enum mqtx_check_level l); /* "ok", "warning", ... */

/* bytes for people: "512 B", "48.0 KiB", "1.2 GiB"; "unknown" when < 0. */
void mqtx_check_size_text(int64_t bytes, char *out, size_t n);

const char *mqtx_relay_state_name(enum mqtx_relay_state s);
/* The verdict of a relay's state: STALE is a WARNING, the others OK. */
enum mqtx_check_level mqtx_relay_state_level(enum mqtx_relay_state s);

struct mqtx_check_queue {
	char *name;
	bool answered; /* the broker answered about it as a queue (it has queues, and did not fail) */
	bool exists;
	int64_t depth, consumers; /* -1: not applicable (Kafka) or unknown */
	char *detail;
};

struct mqtx_check_indoubt {
	char *kind, *key, *detail;
	int64_t id, age_ms;
};

/* One finding. `check` names it (stable, see mqtx-check(1)); the lists
 * say what it is about; count is -1 when it does not apply. */
struct mqtx_check_problem {
	const char *check;
	enum mqtx_check_level level;
	char *message;
	char *action; /* the command or statement to run next, or NULL */
	int64_t count;
	struct mqtx_check_row *rows;
	size_t n_rows;
	struct mqtx_check_blocked *keys;
	size_t n_keys;
	struct mqtx_check_relay *relays;
	size_t n_relays;
	struct mqtx_check_indoubt *items;
	size_t n_items;
	char *destination;             /* destination_missing */
	char *queue;                   /* queue_* */
	struct mqtx_check_xact *xacts; /* old_transaction */
	size_t n_xacts;
};

/* The check.* settings a report was judged with (from the configuration). */
struct mqtx_check_thresholds {
	int64_t warn_age_ms, crit_age_ms; /* 0: off */
	int64_t warn_attempts;            /* 0: off */
	int64_t max_dead;
	int64_t relay_stale_ms;
	bool completion; /* check.completion */
	int64_t completion_after_ms;
	int64_t queue_max_depth; /* 0: off */
	int64_t queue_min_consumers;
	int64_t scan_limit, list_limit;
	bool broker;               /* check.broker (--broker) asked */
	int64_t max_table_size;    /* check.max_table_size, bytes; 0: off */
	int64_t retention_lag_ms;  /* check.retention_lag; 0: off */
	int64_t retention_ms;      /* outbox.retention; 0: off */
	int64_t dead_retention_ms; /* outbox.dead_retention; 0: off */
};
void mqtx_check_thresholds_from_config(struct mqtx_check_thresholds *t, const struct mqtx_config *cfg);

/* What mqtx_check_run found and what it made of it. */
struct mqtx_check_report {
	struct mqtx_check_thresholds thresholds; /* what it was judged with */
	char *outbox;                            /* schema.table, unquoted, for people and labels */
	int64_t elapsed_ms;
	struct mqtx_check_snapshot db; /* what the database said (dests[].exists: what the broker said) */

	int64_t relays_live, relays_stale, relays_stopped; /* stopped: among those read; stale includes replaced */
	int64_t relays_replaced;

	bool in_doubt_known;  /* false when listing failed (see problems) */
	char *in_doubt_error; /* why listing failed */
	struct mqtx_check_indoubt *in_doubt;
	size_t n_in_doubt;

	bool broker_checked; /* --broker asked and the broker answered */
	char *broker_error;  /* --broker: why the broker could not be asked, or NULL */
	enum mqtx_check_level broker_error_level;
	bool broker_has_queues; /* the broker has queues (MQTX_CAP_QUEUES) */
	const char *dest_noun;  /* what a destination is called there ("exchange", "topic", ...); NULL: not reached */
	struct mqtx_check_queue *queues;
	size_t n_queues;

	bool resolved;       /* --resolve ran */
	char *resolve_error; /* --resolve failed as a whole */
	struct mqtx_resolve_stats resolve;

	struct mqtx_check_problem *problems; /* most serious first */
	size_t n_problems;
	enum mqtx_check_level level; /* the most serious problem's, OK when none */
};

/* The rules: each judges one thing of the report (its snapshot, broker,
 * txpub and resolve facts) against rep->thresholds and adds its findings
 * to rep->problems; one may move the evidence it names from rep->db into
 * its finding. mqtx_check_judge runs them all in order and sorts the
 * problems by severity (stably: the rules' order within a level). */
struct mqtx_check_rule {
	const char *name;
	void (*judge)(struct mqtx_check_report *rep);
};
extern const struct mqtx_check_rule mqtx_check_rules[];
extern const size_t mqtx_check_n_rules;
void mqtx_check_judge(struct mqtx_check_report *rep);

struct mqtx_check_opts {
	bool resolve;            /* run mqtx_txpub_resolve first: the only write */
	const char *client_name; /* shown by the broker, e.g. "mqtx check" */
};

/* Checks the outbox configured in cfg over conn (borrowed). Returns 0 and
 * a filled report (free with mqtx_check_report_free), or -1 with err when
 * the check itself could not run (database, configuration): UNKNOWN. */
int mqtx_check_run(PGconn *conn, const struct mqtx_config *cfg, const struct mqtx_check_opts *opts,
		   struct mqtx_check_report *rep, struct mqtx_err *err);
void mqtx_check_report_free(struct mqtx_check_report *rep);

/* The story of one message. */
struct mqtx_explain {
	bool found; /* an outbox row, or an in-doubt prepared transaction */
	bool in_outbox;
	int64_t id;
	char *key, *destination, *routing_key, *ordering_key, *status, *last_error;
	int64_t attempts, redelivery_count;
	char *created_at, *available_at, *sent_at, *redelivered_at, *completed_at; /* ISO 8601, NULL when unset */
	int64_t age_ms, retry_in_ms, sent_ms;                                      /* -1 unknown */
	int64_t ahead;              /* pending rows of its ordering key before it */
	int64_t behind;             /* ... and after it */
	struct mqtx_check_row head; /* the first of them, when ahead > 0 */
	bool relay_alive;
	char *in_doubt; /* txpub's detail when the item is in doubt */
	enum mqtx_check_level level;
	char *verdict; /* one line: where it is and why */
	char **story;  /* what happened, what blocks it */
	size_t n_story;
	char **actions; /* what to do: commands */
	size_t n_actions;
	/* tail mode (outbox.mode: tail) */
	bool tail;
	struct mqtx_db_check_tail_row tail_row; /* in_outbox: its bucket, checkpoint and parked row */
	struct mqtx_check_xact *writers;        /* not found: open or prepared transactions that wrote to the outbox */
	size_t n_writers;
	int64_t max_id; /* not found: the highest committed id; -1 none */
};

/* Looks up ident as an outbox id, then as an idempotency key. Returns 0
 * (ex->found says whether it exists) or -1 with err. */
int mqtx_check_explain(PGconn *conn, const struct mqtx_config *cfg, const char *ident, struct mqtx_explain *ex,
		       struct mqtx_err *err);
void mqtx_explain_free(struct mqtx_explain *ex);

#endif
