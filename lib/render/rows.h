/* lib/render/rows: tab-separated rows for scripts (relay --dry-run,
 * redeliver's sample) and the progress bar of a long run on a terminal.
 *
 * A row is one line whatever its fields hold: a tab, CR or LF inside a
 * field is written as a space, NULL as "-". */
#ifndef MQTX_RENDER_ROWS_H
#define MQTX_RENDER_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "redeliver/redeliver.h"
#include "render/render.h"

/* fields[0..n) separated by tabs, then "\n". */
void mqtx_render_tsv_row(struct mqtx_render *r, const char *const *fields, size_t n);
/* A destination as rows show it: "(default)" for the empty string (AMQP's
 * default exchange), else destination itself (NULL stays NULL). */
const char *mqtx_render_destination(const char *destination);

/* relay --dry-run: the header line, and one row per claimed message. */
void mqtx_render_relay_dry_run_header(struct mqtx_render *r);
void mqtx_render_relay_dry_run_row(struct mqtx_render *r, int64_t id, const char *key, const char *destination,
				   const char *routing_key, const char *ordering_key, size_t payload_len);

/* redeliver's dry run: the header line, and one row per sampled outbox row. */
void mqtx_render_redeliver_header(struct mqtx_render *r);
void mqtx_render_redeliver_row(struct mqtx_render *r, const struct mqtx_redeliver_row *row);

/* A progress bar that redraws itself in place on a terminal:
 * "\r[####------] done/total  R rows/s  ETA Ns" and an erase to the end
 * of the line. done is capped at total; nothing is written when total
 * is not positive. elapsed_ms: since the work began. */
void mqtx_render_progress(struct mqtx_render *r, int64_t done, int64_t total, int64_t elapsed_ms);
/* Erases the bar's line ("\r" and an erase to the end of the line). */
void mqtx_render_progress_clear(struct mqtx_render *r);

#endif
