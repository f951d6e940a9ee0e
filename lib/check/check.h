/* mqtx check: the health of one outbox as data. mqtx_check_run looks at
 * the outbox (counts, ages, dead rows, blocked ordering keys), the relay
 * heartbeats, txpub's in-doubt items, optionally the broker and consumer
 * completion, and judges every finding against the check.* thresholds;
 * mqtx_check_explain tells the story of one message. Nothing here prints:
 * lib/render/check.h renders the report (a table, JSON or Prometheus
 * text); the report carries every verdict and the thresholds behind them,
 * so a renderer only shows what is there.
 *
 * Cost: the big statuses (sent, rolled_back) are estimated from
 * pg_class/pg_stats on large tables; pending and dead rows are read
 * through their partial indexes, at most check.scan_limit of each; recent
 * traffic is a range of the sent_at index. */
#ifndef MQTX_CHECK_H
#define MQTX_CHECK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "base/error.h"
#include "txpub/txpub.h"

/* Nagios levels; also the exit codes of mqtx check. */
enum mqtx_check_level {
	MQTX_CHECK_OK = 0,
	MQTX_CHECK_WARNING = 1,
	MQTX_CHECK_CRITICAL = 2,
	MQTX_CHECK_UNKNOWN = 3,
};
const char *mqtx_check_level_name(enum mqtx_check_level l); /* "ok", "warning", ... */

enum mqtx_check_status { MQTX_ST_PENDING, MQTX_ST_SENT, MQTX_ST_DEAD, MQTX_ST_PREPARED, MQTX_ST_ROLLED_BACK, MQTX_ST__COUNT };
extern const char *const mqtx_check_status_names[MQTX_ST__COUNT];

struct mqtx_check_count {
	int64_t n;        /* -1: unknown (never analyzed, or no such column) */
	bool approximate; /* an estimate (pg_class/pg_stats) or a lower bound (scan limit) */
};

#define MQTX_CHECK_PARKED INT64_MAX

/* A row named in a finding. Ages in ms; -1 when unknown. */
struct mqtx_check_row {
	int64_t id;
	char *key;
	char *destination;
	char *ordering_key; /* NULL when none */
	char *last_error;   /* NULL when none */
	int64_t attempts;
	int64_t age_ms;      /* since created_at */
	int64_t retry_in_ms; /* until available_at; <= 0: eligible now; MQTX_CHECK_PARKED: infinity */
};

struct mqtx_check_dest {
	char *name;
	int64_t pending, dead;
	int64_t oldest_pending_ms;              /* -1: none or unknown */
	int64_t relayed_minute, relayed_hour;   /* -1: unknown (no sent_at column) */
	int exists;                             /* --broker: 1 yes, 0 no, -1 not asked */
	char *broker_detail;                    /* what the broker said, or NULL */
};

enum mqtx_relay_state { MQTX_RELAY_LIVE, MQTX_RELAY_STOPPED, MQTX_RELAY_STALE, MQTX_RELAY_REPLACED };
const char *mqtx_relay_state_name(enum mqtx_relay_state s);

struct mqtx_check_relay {
	char *relay_id, *host, *version, *last_error;
	int64_t pid;
	int64_t seen_ms;    /* since last_seen */
	int64_t started_ms; /* since started_at */
	int64_t relayed, failed;
	bool stopped;       /* stopped_at is set */
	enum mqtx_relay_state state; /* judged against check.relay_stale */
	enum mqtx_check_level level; /* the state's verdict: STALE is a WARNING */
};

struct mqtx_check_blocked {
	char *ordering_key;
	int64_t behind; /* pending rows of the key waiting behind the head */
	struct mqtx_check_row head;
};

struct mqtx_check_queue {
	char *name;
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
	char *destination; /* destination_missing */
	char *queue;       /* queue_* */
};

/* The check.* settings a report was judged with (from the configuration). */
struct mqtx_check_thresholds {
	int64_t warn_age_ms, crit_age_ms; /* 0: off */
	int64_t warn_attempts;            /* 0: off */
	int64_t max_dead;
	int64_t relay_stale_ms;
	bool completion;                  /* check.completion */
	int64_t completion_after_ms;
	int64_t queue_max_depth;          /* 0: off */
	int64_t queue_min_consumers;
	int64_t scan_limit, list_limit;
	bool broker;                      /* check.broker (--broker) asked */
};
void mqtx_check_thresholds_from_config(struct mqtx_check_thresholds *t, const struct mqtx_config *cfg);

struct mqtx_check_report {
	struct mqtx_check_thresholds thresholds;
	char *outbox;   /* schema.table, unquoted, for people and labels */
	char *database; /* current_database() */
	char *checked_at; /* ISO 8601 UTC */
	int64_t elapsed_ms;

	struct mqtx_check_count status[MQTX_ST__COUNT];
	int64_t total_estimate; /* -1 unknown */
	int64_t oldest_pending_ms; /* -1: no pending rows, or no created_at column */
	int64_t relayed_minute, relayed_hour; /* -1: no sent_at column */
	bool relayed_approximate;             /* more than check.scan_limit in the hour: lower bounds */
	bool estimated_from_stats;            /* large table with planner statistics for the status column */
	int64_t high_attempt_rows;
	int64_t blocked_keys, blocked_rows; /* -1: no ordering_key column */

	struct mqtx_check_dest *dests;
	size_t n_dests;

	bool relays_known; /* the table mqtx_relays exists */
	struct mqtx_check_relay *relays;
	size_t n_relays;
	int64_t relays_live, relays_stale, relays_stopped; /* stopped: among those read; stale includes replaced */
	int64_t relays_replaced;
	int64_t last_relay_seen_ms; /* -1: never */

	bool in_doubt_known; /* false when listing failed (see problems) */
	struct mqtx_check_indoubt *in_doubt;
	size_t n_in_doubt;

	bool completion_checked;
	int64_t awaiting_completion;
	int64_t oldest_awaiting_ms; /* since sent_at; -1 none */

	bool broker_checked; /* --broker asked and the broker answered */
	struct mqtx_check_queue *queues;
	size_t n_queues;

	bool resolved; /* --resolve ran */
	struct mqtx_resolve_stats resolve;

	struct mqtx_check_problem *problems;
	size_t n_problems;
	enum mqtx_check_level level;
};

struct mqtx_check_opts {
	bool resolve;    /* run mqtx_txpub_resolve first: the only write */
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
	bool found;   /* an outbox row, or an in-doubt prepared transaction */
	bool in_outbox;
	int64_t id;
	char *key, *destination, *routing_key, *ordering_key, *status, *last_error;
	int64_t attempts, redelivery_count;
	char *created_at, *available_at, *sent_at, *redelivered_at, *completed_at; /* ISO 8601, NULL when unset */
	int64_t age_ms, retry_in_ms, sent_ms; /* -1 unknown */
	int64_t ahead;        /* pending rows of its ordering key before it */
	int64_t behind;       /* ... and after it */
	struct mqtx_check_row head; /* the first of them, when ahead > 0 */
	bool relay_alive;
	char *in_doubt; /* txpub's detail when the item is in doubt */
	enum mqtx_check_level level;
	char *verdict;  /* one line: where it is and why */
	char **story;   /* what happened, what blocks it */
	size_t n_story;
	char **actions; /* what to do: commands */
	size_t n_actions;
};

/* Looks up ident as an outbox id, then as an idempotency key. Returns 0
 * (ex->found says whether it exists) or -1 with err. */
int mqtx_check_explain(PGconn *conn, const struct mqtx_config *cfg, const char *ident, struct mqtx_explain *ex,
		       struct mqtx_err *err);
void mqtx_explain_free(struct mqtx_explain *ex);

#endif
