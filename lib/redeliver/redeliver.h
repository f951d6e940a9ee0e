/* mqtx redeliver: selecting outbox rows by what an operator can name and
 * re-sending them with their own idempotency keys, reviving dead rows,
 * and collecting consumer completions ("acks") into
 * <schema>.mqtx_completions.
 *
 * A re-send changes a row only after the broker confirmed its message:
 * redelivery_count and redelivered_at are written in the transaction that
 * holds the rows' locks and the ordering-key bucket locks the relay takes,
 * after the confirms came. A crash in between sends the batch again on
 * the next run, with the same keys. */
#ifndef MQTX_REDELIVER_H
#define MQTX_REDELIVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "base/error.h"
#include "db/redeliver.h"

/* ---- --where: "column OP value [AND column OP value ...]" ---- */

/* Parses text and appends its conditions to w. Columns come from a fixed
 * whitelist of logical column names (mqtx_where_columns()); values are
 * 'quoted strings' ('' for a quote) or bare numbers and words. Nothing of
 * the text ever becomes SQL: columns map to quoted identifiers, values to
 * parameters. Errors name the offset. */
int mqtx_where_parse(struct mqtx_where *w, const char *text, struct mqtx_err *err);
void mqtx_where_free(struct mqtx_where *w);
/* "id, idempotency_key, ..." for help and messages. */
const char *mqtx_where_columns(void);

/* ---- what to select (struct mqtx_selection: db/redeliver.h) ---- */

/* Appends "1,5,9" or "100-200" (or a mix, "1,5,100-200") to s->ids. */
int mqtx_id_list_parse(struct mqtx_selection *s, const char *text, struct mqtx_err *err);
/* Appends an owned copy of v to a string list. */
void mqtx_list_add(char ***list, size_t *n, const char *v);
/* --since/--until: a duration ("10m": that long ago) or a timestamp. */
void mqtx_time_bound_set(struct mqtx_time_bound *t, const char *text);
void mqtx_selection_free(struct mqtx_selection *s);

/* "N", "N/s", "N/m" or "N/h" -> messages per second (0: no limit). */
int mqtx_rate_parse(const char *text, double *per_sec, struct mqtx_err *err);
/* cfg's redeliver.rate in messages per second. A bad value set by --rate
 * is an MQTX_E_USAGE error "--rate: ..."; one from the file, the
 * environment or the default an MQTX_E_CONFIG error that names where it
 * came from: "redeliver.rate (FILE:LINE:COL): ...". */
int mqtx_redeliver_rate(const struct mqtx_config *cfg, double *per_sec, struct mqtx_err *err);
/* --collect-acks needs redeliver.ack_source: 0, or an MQTX_E_CONFIG error. */
int mqtx_redeliver_check_ack_source(const struct mqtx_config *cfg, struct mqtx_err *err);

/* ---- running ---- */

struct mqtx_redeliver_stats {
	int64_t done;         /* selected rows handled: re-sent, failed or held back (or requeued) */
	int64_t redelivered;  /* confirmed by the broker and recorded */
	int64_t failed;       /* refused by the broker or unusable (bad headers); not recorded */
	int64_t held_back;    /* an earlier row of the ordering key is still pending */
	int64_t requeued;     /* dead rows set back to pending */
	int64_t acks;         /* ack messages taken from the ack source */
	int64_t completions;  /* keys new to mqtx_completions */
	int64_t acks_ignored; /* ack messages without a usable key (acknowledged anyway) */
	bool interrupted;     /* a stop request ended the run early */
};

struct mqtx_redeliver_opts {
	const struct mqtx_selection *sel;
	int64_t limit; /* most selected rows handled (0: no limit) */
	double rate;   /* most messages per second (0: no limit) */
	/* Non-zero: finish the batch in flight, record it, return. */
	volatile sig_atomic_t *stop;
	/* Called after every published chunk and batch (may be NULL). */
	void (*progress)(void *ctx, const struct mqtx_redeliver_stats *st);
	void *ctx;
	const char *client_name;
};

struct mqtx_redeliver;

/* Connects to the database and binds to the outbox. cfg and o (and what
 * they point at) are borrowed and must outlive r. */
struct mqtx_redeliver *mqtx_redeliver_new(const struct mqtx_config *cfg, const struct mqtx_redeliver_opts *o,
					  struct mqtx_err *err);
void mqtx_redeliver_free(struct mqtx_redeliver *r);

/* How many rows the selection holds (at most opts.limit). Changes nothing. */
int mqtx_redeliver_count(struct mqtx_redeliver *r, int64_t *n, struct mqtx_err *err);
/* Calls row for the first n selected rows in id order. Changes nothing. */
int mqtx_redeliver_sample(struct mqtx_redeliver *r, size_t n,
			  void (*row)(void *ctx, const struct mqtx_redeliver_row *row), void *ctx,
			  struct mqtx_err *err);
/* Re-sends the selected rows whose status is sent or dead, in id order,
 * in batches of redeliver.batch_size (one transaction each). */
int mqtx_redeliver_resend(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st, struct mqtx_err *err);
/* Sets the selected dead rows back to pending with attempts 0 and
 * available_at now(), for the relay to send. */
int mqtx_redeliver_requeue(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st, struct mqtx_err *err);
/* Drains redeliver.ack_source into mqtx_completions; each batch of ack
 * messages is acknowledged to the broker after its keys committed. */
int mqtx_redeliver_collect_acks(struct mqtx_redeliver *r, struct mqtx_redeliver_stats *st, struct mqtx_err *err);

#endif
