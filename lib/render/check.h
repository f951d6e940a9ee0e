/* Rendering of mqtx check's report and of --explain: a table for people,
 * JSON for programs (version 1, see mqtx-check(1)), Prometheus text for
 * the textfile collector. Everything shown comes from the report,
 * verdicts and thresholds included. */
#ifndef MQTX_RENDER_CHECK_H
#define MQTX_RENDER_CHECK_H

#include "check/check.h"
#include "render/render.h"

/* The version of the JSON documents below. */
#define MQTX_CHECK_JSON_VERSION 1

enum mqtx_check_format { MQTX_CHECK_FMT_TEXT, MQTX_CHECK_FMT_JSON, MQTX_CHECK_FMT_PROMETHEUS };

void mqtx_render_check_text(struct mqtx_render *r, const struct mqtx_check_report *rep);
void mqtx_render_check_json(struct mqtx_render *r, const struct mqtx_check_report *rep);
void mqtx_render_check_prometheus(struct mqtx_render *r, const struct mqtx_check_report *rep);
/* One of the three by format. */
void mqtx_render_check(struct mqtx_render *r, enum mqtx_check_format format, const struct mqtx_check_report *rep);

/* The check could not run: UNKNOWN in the format, so that a monitoring
 * pipeline records it instead of keeping stale numbers. outbox
 * ("schema.table") may be NULL when not known; message is the reason.
 * Text: the one line Nagios reads ("UNKNOWN - message"). */
void mqtx_render_check_unknown(struct mqtx_render *r, enum mqtx_check_format format, const char *outbox,
			       const char *message);

/* --explain: ident is what was asked for (an id or a key). Text or JSON. */
void mqtx_render_explain_text(struct mqtx_render *r, const struct mqtx_explain *ex, const char *ident);
void mqtx_render_explain_json(struct mqtx_render *r, const struct mqtx_explain *ex, const char *ident);

#endif
