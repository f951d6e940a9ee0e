/* Tab-separated rows and the progress bar (see rows.h). */
#define _POSIX_C_SOURCE 200809L
#include "render/rows.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void tsv_field(struct mqtx_render *r, const char *s)
{
	if (s == NULL) {
		mqtx_render_puts(r, "-");
		return;
	}
	while (*s != '\0') {
		size_t n = strcspn(s, "\t\r\n");
		mqtx_render_add(r, s, n);
		s += n;
		if (*s != '\0') {
			mqtx_render_puts(r, " ");
			s++;
		}
	}
}

void mqtx_render_tsv_row(struct mqtx_render *r, const char *const *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			mqtx_render_puts(r, "\t");
		tsv_field(r, fields[i]);
	}
	mqtx_render_puts(r, "\n");
}

const char *mqtx_render_destination(const char *destination)
{
	return destination != NULL && destination[0] == '\0' ? "(default)" : destination;
}

void mqtx_render_relay_dry_run_header(struct mqtx_render *r)
{
	static const char *const h[] = {"id", "key", "destination", "routing_key", "ordering_key", "bytes"};
	mqtx_render_tsv_row(r, h, sizeof(h) / sizeof(h[0]));
}

void mqtx_render_relay_dry_run_row(struct mqtx_render *r, int64_t id, const char *key, const char *destination,
				   const char *routing_key, const char *ordering_key, size_t payload_len)
{
	char ids[24], bytes[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	snprintf(bytes, sizeof(bytes), "%zu", payload_len);
	const char *f[] = {ids, key, mqtx_render_destination(destination), routing_key, ordering_key, bytes};
	mqtx_render_tsv_row(r, f, sizeof(f) / sizeof(f[0]));
}

void mqtx_render_redeliver_header(struct mqtx_render *r)
{
	static const char *const h[] = {"id",           "key",      "status",           "destination", "routing_key",
					"ordering_key", "attempts", "redelivery_count", "created_at",  "sent_at"};
	mqtx_render_tsv_row(r, h, sizeof(h) / sizeof(h[0]));
}

void mqtx_render_redeliver_row(struct mqtx_render *r, const struct mqtx_redeliver_row *row)
{
	const char *f[] = {row->id,          row->key,
			   row->status,      mqtx_render_destination(row->destination),
			   row->routing_key, row->ordering_key,
			   row->attempts,    row->redelivery_count,
			   row->created_at,  row->sent_at};
	mqtx_render_tsv_row(r, f, sizeof(f) / sizeof(f[0]));
}

#define BAR_WIDTH 30

void mqtx_render_progress(struct mqtx_render *r, int64_t done, int64_t total, int64_t elapsed_ms)
{
	if (total <= 0)
		return;
	if (done > total)
		done = total;
	if (done < 0)
		done = 0;
	int fill = (int)(done * BAR_WIDTH / total);
	double secs = (double)elapsed_ms / 1000.0;
	double rate = secs > 0 ? (double)done / secs : 0;
	char bar[BAR_WIDTH + 1];
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[BAR_WIDTH] = '\0';
	mqtx_render_printf(r, "\r[%s] %lld/%lld  %.1f rows/s", bar, (long long)done, (long long)total, rate);
	if (rate > 0 && done < total)
		mqtx_render_printf(r, "  ETA %.0fs", (double)(total - done) / rate);
	mqtx_render_puts(r, "\033[K");
}

void mqtx_render_progress_clear(struct mqtx_render *r)
{
	mqtx_render_puts(r, "\r\033[K");
}
