/* Rendering of mqtx txpub's output: the --report JSON document (per
 * message and per batch: confirmed, not_published or in_doubt) and the
 * keys --prepare prints. The outcome is decided by the command (it is its
 * exit status in words); this module only shows it. */
#ifndef MQTX_RENDER_TXPUB_H
#define MQTX_RENDER_TXPUB_H

#include "render/render.h"
#include "txpub/txpub.h"

/* A txpub run, as --report shows it. All pointers borrowed. */
struct mqtx_txpub_report {
	const char *operation; /* "publish", "prepare", "sql" */
	const char *mode;      /* the effective mode's name, "" when none was chosen */
	int exit_code;
	const char *outcome;               /* published, prepared, not_published, partial, in_doubt, conflict, error */
	const struct mqtx_txpub_set *set;  /* NULL: the run stopped before there were messages */
	const struct mqtx_sql_result *sql; /* --sql once the transaction was tried, else NULL */
};

/* The --report document, one JSON object and a newline. */
void mqtx_render_txpub_report(struct mqtx_render *r, const struct mqtx_txpub_report *rep);
/* --prepare: the key of every half message, one a line. */
void mqtx_render_txpub_keys(struct mqtx_render *r, const struct mqtx_txpub_set *s);
/* On stderr, through the log: the messages that did not make it (the
 * first few failures), a summary (a warning when any was lost, which
 * --quiet keeps), then every key in doubt, one a line, for scripts to pick
 * up. what names the step ("confirm", "--sql", ...). */
void mqtx_render_txpub_problems(const struct mqtx_txpub_set *s, const char *what);

#endif
