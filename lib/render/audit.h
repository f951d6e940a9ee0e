/* Rendering of mqtx dedupe-audit's report: a summary and detail lists for
 * people, one JSON document for programs, CSV with one row per detail.
 * Everything shown comes from the report, the verdict and the tolerance
 * it was judged with included (lib/audit/audit.h). */
#ifndef MQTX_RENDER_AUDIT_H
#define MQTX_RENDER_AUDIT_H

#include "audit/audit.h"
#include "render/render.h"

enum mqtx_audit_format { MQTX_AUDIT_FMT_TEXT, MQTX_AUDIT_FMT_JSON, MQTX_AUDIT_FMT_CSV };

void mqtx_render_audit_text(struct mqtx_render *r, const struct mqtx_audit_report *rep);
void mqtx_render_audit_json(struct mqtx_render *r, const struct mqtx_audit_report *rep);
void mqtx_render_audit_csv(struct mqtx_render *r, const struct mqtx_audit_report *rep);
/* One of the three by format. */
void mqtx_render_audit(struct mqtx_render *r, enum mqtx_audit_format format, const struct mqtx_audit_report *rep);

/* The result line of the text report: "OK: ..." or "FAIL: ... (exit N)". */
void mqtx_render_audit_verdict(struct mqtx_buf *b, const struct mqtx_audit_report *rep);

#endif
