/* lib/render: the one output module. Reports (check, dedupe-audit, txpub)
 * are data built by lib/; this module turns them into text for people,
 * JSON for programs, Prometheus text format and CSV. Nothing else in lib/
 * writes output, and nothing here decides anything: verdicts, thresholds
 * and states are in the report, a renderer only shows them.
 *
 * How a command uses it:
 *
 *	struct mqtx_render r;
 *	mqtx_render_init_file(&r, stdout, colour);   (or mqtx_render_init_buf)
 *	mqtx_render_check_text(&r, &report);         (lib/render/check.h, ...)
 *	if (mqtx_render_finish(&r) < 0)              (flush; a failed write is an error)
 *		...
 *
 * The pieces below are shared by every renderer:
 * - struct mqtx_render: where output goes (a FILE*, or a buffer that tests
 *   read back), whether text may use ANSI colours, printf-style writes.
 * - struct mqtx_jw: the JSON writer of command output (objects, arrays,
 *   commas), on top of base/json.h's string escaping. (base/json.h's own
 *   helpers build the JSON that goes to the database, brokers and logs.)
 * - mqtx_prom_*: Prometheus text exposition format (metric and label name
 *   checks, label value and HELP escaping, HELP/TYPE lines, samples).
 * - mqtx_csv_*: RFC 4180 fields (quoted only when needed, quotes doubled).
 * - mqtx_table_* and mqtx_render_cell: fixed-width text tables.
 * Tab-separated rows (relay --dry-run, redeliver's sample, config --keys)
 * and the progress bar are in render/rows.h. */
#ifndef MQTX_RENDER_H
#define MQTX_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

/* ------------------------------------------------------------ context */

struct mqtx_render {
	struct mqtx_buf b; /* rendered, not yet written to out (everything when out is NULL) */
	FILE *out;         /* borrowed; NULL: keep the output in b */
	bool colour;       /* text renderers may use ANSI SGR sequences */
	bool failed;       /* a write to out failed */
};

/* Output to out (borrowed, not closed), written in chunks as it grows and
 * at mqtx_render_finish. colour: the caller decided (a tty, NO_COLOR). */
void mqtx_render_init_file(struct mqtx_render *r, FILE *out, bool colour);
/* Output kept in r->b (r->b.data, r->b.len; NUL-terminated once non-empty). */
void mqtx_render_init_buf(struct mqtx_render *r);
/* Writes what is pending to out and flushes it. Returns 0, or -1 when a
 * write failed (now or earlier). For a buffer context: 0. */
int mqtx_render_flush(struct mqtx_render *r);
/* mqtx_render_flush, then frees the buffer of a file context (a buffer
 * context keeps r->b for the caller, who frees it with mqtx_render_free). */
int mqtx_render_finish(struct mqtx_render *r);
void mqtx_render_free(struct mqtx_render *r);
/* Writes a rendered document to path as a whole: into path.tmp.PID, then
 * renamed over path, so a reader never sees half of it. what names the
 * document in the error ("the report"). 0, or -1 with err (MQTX_E_IO)
 * naming it and the file; the temporary file is removed then. */
int mqtx_render_write_file(const char *path, const char *what, const char *doc, size_t len, struct mqtx_err *err);

void mqtx_render_printf(struct mqtx_render *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mqtx_render_puts(struct mqtx_render *r, const char *s); /* no newline added */
void mqtx_render_add(struct mqtx_render *r, const void *p, size_t n);
/* Appends a finished buffer (e.g. a JSON document) and resets it. */
void mqtx_render_take(struct mqtx_render *r, struct mqtx_buf *b);

/* code when colours are on, "" when off: mqtx_render_sgr(r, MQTX_SGR_BOLD). */
#define MQTX_SGR_RESET "\033[0m"
#define MQTX_SGR_BOLD "\033[1m"
#define MQTX_SGR_RED "\033[1;31m"
#define MQTX_SGR_GREEN "\033[32m"
#define MQTX_SGR_YELLOW "\033[33m"
#define MQTX_SGR_MAGENTA "\033[35m"
const char *mqtx_render_sgr(const struct mqtx_render *r, const char *code);

/* ------------------------------------------------------------ text */

/* s shortened to at most max bytes for a table cell: cut at a UTF-8 lead
 * byte, "..." appended; NULL shows as "-". Writes into out (n bytes). */
void mqtx_render_cell(const char *s, size_t max, char *out, size_t n);
/* A duration for people ("1h2m", "350ms"), "-" when ms is negative. */
void mqtx_render_age(int64_t ms, char *out, size_t n);

/* Fixed-width tables: each column is padded to width (in bytes, as
 * printf pads), right-aligned when right is set, columns separated by
 * one space. A cell longer than width is not cut (use mqtx_render_cell). */
struct mqtx_table_col {
	const char *title;
	int width;
	bool right;
};
/* The title line, bold when colours are on; extra (may be NULL) is
 * appended inside the bold run before the newline. */
void mqtx_table_header(struct mqtx_render *r, const struct mqtx_table_col *cols, size_t n, const char *extra);
/* One row without its newline (the caller may append more). */
void mqtx_table_cells(struct mqtx_render *r, const struct mqtx_table_col *cols, size_t n, const char *const *cells);

/* ------------------------------------------------------------ JSON */

#define MQTX_JW_MAX_DEPTH 32

/* Writes JSON into b (borrowed): values, objects and arrays, with commas
 * where they belong. In an object, every value follows mqtx_jw_key (or
 * use the mqtx_jw_k* shorthands). Strings are escaped by base/json.h
 * (control characters, quotes, invalid UTF-8 as U+FFFD). Nesting deeper
 * than MQTX_JW_MAX_DEPTH is a programming error: the extra levels are
 * still written, their commas are not tracked. */
struct mqtx_jw {
	struct mqtx_buf *b;
	int depth;
	unsigned char first[MQTX_JW_MAX_DEPTH]; /* no member written yet at this level */
};

void mqtx_jw_init(struct mqtx_jw *w, struct mqtx_buf *b);
void mqtx_jw_obj(struct mqtx_jw *w); /* { */
void mqtx_jw_obj_end(struct mqtx_jw *w);
void mqtx_jw_arr(struct mqtx_jw *w); /* [ */
void mqtx_jw_arr_end(struct mqtx_jw *w);
void mqtx_jw_key(struct mqtx_jw *w, const char *k);
void mqtx_jw_str(struct mqtx_jw *w, const char *s); /* NULL -> null */
void mqtx_jw_strn(struct mqtx_jw *w, const char *s, size_t len);
void mqtx_jw_int(struct mqtx_jw *w, int64_t v);
void mqtx_jw_int_or_null(struct mqtx_jw *w, int64_t v); /* negative (unknown, not applicable) -> null */
void mqtx_jw_bool(struct mqtx_jw *w, bool v);
void mqtx_jw_null(struct mqtx_jw *w);
/* Milliseconds as seconds with three decimals ("1.250"). */
void mqtx_jw_secs(struct mqtx_jw *w, int64_t ms);
/* A value already in JSON (a number's text, a document). */
void mqtx_jw_raw(struct mqtx_jw *w, const char *json);

/* key + value */
void mqtx_jw_kstr(struct mqtx_jw *w, const char *k, const char *s);
void mqtx_jw_kint(struct mqtx_jw *w, const char *k, int64_t v);
void mqtx_jw_kint_or_null(struct mqtx_jw *w, const char *k, int64_t v);
void mqtx_jw_kbool(struct mqtx_jw *w, const char *k, bool v);
void mqtx_jw_knull(struct mqtx_jw *w, const char *k);
/* Seconds; null when ms is negative and null_if_negative. */
void mqtx_jw_ksecs(struct mqtx_jw *w, const char *k, int64_t ms, bool null_if_negative);

/* ------------------------------------------------------------ Prometheus */

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*
 * and not starting with "__" (reserved). */
bool mqtx_prom_metric_name_ok(const char *name);
bool mqtx_prom_label_name_ok(const char *name);
/* A label value inside its quotes: backslash, double quote and newline escaped. */
void mqtx_prom_add_label_value(struct mqtx_buf *b, const char *s);
/* HELP text: backslash and newline escaped. */
void mqtx_prom_add_help(struct mqtx_buf *b, const char *s);

struct mqtx_prom_label {
	const char *name;
	const char *value; /* unescaped */
};

/* "# HELP name help\n# TYPE name type\n"; type "gauge", "counter", ... */
void mqtx_prom_family(struct mqtx_buf *b, const char *name, const char *type, const char *help);
/* name{l1="v1",l2="v2"} value\n (no braces without labels). value: the
 * number's text. */
void mqtx_prom_sample(struct mqtx_buf *b, const char *name, const struct mqtx_prom_label *labels, size_t n_labels,
		      const char *value);
void mqtx_prom_sample_int(struct mqtx_buf *b, const char *name, const struct mqtx_prom_label *labels, size_t n_labels,
			  int64_t v);
/* Milliseconds as seconds with three decimals; negative shows as 0. */
void mqtx_prom_sample_secs(struct mqtx_buf *b, const char *name, const struct mqtx_prom_label *labels, size_t n_labels,
			   int64_t ms);

/* ------------------------------------------------------------ CSV */

/* One RFC 4180 field: as is, or in double quotes (quotes doubled) when it
 * holds a comma, a quote, CR or LF. NULL is an empty field. */
void mqtx_csv_field(struct mqtx_buf *b, const char *s);
void mqtx_csv_fieldn(struct mqtx_buf *b, const char *s, size_t len);
/* A whole record: fields separated by commas, ended by "\n" (LF, as the
 * commands have always written; RFC 4180 readers accept it). */
void mqtx_csv_row(struct mqtx_buf *b, const char *const *fields, size_t n);

#endif
