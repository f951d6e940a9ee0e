/* The output module's core (see render.h): the render context, the JSON
 * writer, Prometheus text format, CSV fields and text tables. */
#include "render/render.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"

/* A file context writes out once this much is pending. */
#define FLUSH_AT 65536

/* ------------------------------------------------------------ context */

void mqtx_render_init_file(struct mqtx_render *r, FILE *out, bool colour)
{
	memset(r, 0, sizeof(*r));
	r->out = out;
	r->colour = colour;
}

void mqtx_render_init_buf(struct mqtx_render *r)
{
	memset(r, 0, sizeof(*r));
}

static void write_pending(struct mqtx_render *r)
{
	if (r->out == NULL || r->b.len == 0)
		return;
	if (!r->failed && fwrite(r->b.data, 1, r->b.len, r->out) != r->b.len)
		r->failed = true;
	mqtx_buf_reset(&r->b);
}

static void maybe_write(struct mqtx_render *r)
{
	if (r->out != NULL && r->b.len >= FLUSH_AT)
		write_pending(r);
}

int mqtx_render_flush(struct mqtx_render *r)
{
	if (r->out == NULL)
		return 0;
	write_pending(r);
	if (fflush(r->out) != 0 || ferror(r->out))
		r->failed = true;
	return r->failed ? -1 : 0;
}

int mqtx_render_finish(struct mqtx_render *r)
{
	int rc = mqtx_render_flush(r);
	if (r->out != NULL)
		mqtx_buf_free(&r->b);
	return rc;
}

void mqtx_render_free(struct mqtx_render *r)
{
	mqtx_buf_free(&r->b);
}

void mqtx_render_printf(struct mqtx_render *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mqtx_buf_vprintf(&r->b, fmt, ap);
	va_end(ap);
	maybe_write(r);
}

void mqtx_render_puts(struct mqtx_render *r, const char *s)
{
	mqtx_buf_adds(&r->b, s);
	maybe_write(r);
}

void mqtx_render_add(struct mqtx_render *r, const void *p, size_t n)
{
	mqtx_buf_add(&r->b, p, n);
	maybe_write(r);
}

void mqtx_render_take(struct mqtx_render *r, struct mqtx_buf *b)
{
	if (b->len > 0)
		mqtx_render_add(r, b->data, b->len);
	mqtx_buf_reset(b);
}

const char *mqtx_render_sgr(const struct mqtx_render *r, const char *code)
{
	return r->colour ? code : "";
}

/* ------------------------------------------------------------ text */

void mqtx_render_cell(const char *s, size_t max, char *out, size_t n)
{
	if (s == NULL)
		s = "-";
	size_t len = strlen(s);
	if (len <= max) {
		snprintf(out, n, "%s", s);
		return;
	}
	size_t cut = max > 3 ? max - 3 : max;
	while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
		cut--;
	snprintf(out, n, "%.*s...", (int)cut, s);
}

void mqtx_render_age(int64_t ms, char *out, size_t n)
{
	if (ms < 0)
		snprintf(out, n, "-");
	else
		mqtx_format_duration(ms, out, n);
}

static void table_cell(struct mqtx_render *r, const struct mqtx_table_col *col, bool first, const char *text)
{
	mqtx_render_printf(r, col->right ? "%s%*s" : "%s%-*s", first ? "" : " ", col->width, text ? text : "");
}

void mqtx_table_header(struct mqtx_render *r, const struct mqtx_table_col *cols, size_t n, const char *extra)
{
	mqtx_render_puts(r, mqtx_render_sgr(r, MQTX_SGR_BOLD));
	for (size_t i = 0; i < n; i++)
		table_cell(r, &cols[i], i == 0, cols[i].title);
	if (extra != NULL)
		mqtx_render_puts(r, extra);
	mqtx_render_puts(r, mqtx_render_sgr(r, MQTX_SGR_RESET));
	mqtx_render_puts(r, "\n");
}

void mqtx_table_cells(struct mqtx_render *r, const struct mqtx_table_col *cols, size_t n, const char *const *cells)
{
	for (size_t i = 0; i < n; i++)
		table_cell(r, &cols[i], i == 0, cells[i]);
}

/* ------------------------------------------------------------ JSON */

enum { JW_FIRST = 1, JW_OBJECT = 2 };

void mqtx_jw_init(struct mqtx_jw *w, struct mqtx_buf *b)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
}

/* Before a value: a comma between array items (an object's comma comes
 * with its key). */
static void before_value(struct mqtx_jw *w)
{
	if (w->depth <= 0 || w->depth > MQTX_JW_MAX_DEPTH)
		return;
	unsigned char *st = &w->first[w->depth - 1];
	if (*st & JW_OBJECT)
		return;
	if (!(*st & JW_FIRST))
		mqtx_buf_addc(w->b, ',');
	*st &= (unsigned char)~JW_FIRST;
}

static void jw_open(struct mqtx_jw *w, char c, unsigned char kind)
{
	before_value(w);
	mqtx_buf_addc(w->b, c);
	if (w->depth < MQTX_JW_MAX_DEPTH)
		w->first[w->depth] = (unsigned char)(JW_FIRST | kind);
	w->depth++;
}

static void jw_close(struct mqtx_jw *w, char c)
{
	mqtx_buf_addc(w->b, c);
	if (w->depth > 0)
		w->depth--;
}

void mqtx_jw_obj(struct mqtx_jw *w)
{
	jw_open(w, '{', JW_OBJECT);
}

void mqtx_jw_obj_end(struct mqtx_jw *w)
{
	jw_close(w, '}');
}

void mqtx_jw_arr(struct mqtx_jw *w)
{
	jw_open(w, '[', 0);
}

void mqtx_jw_arr_end(struct mqtx_jw *w)
{
	jw_close(w, ']');
}

void mqtx_jw_key(struct mqtx_jw *w, const char *k)
{
	if (w->depth > 0 && w->depth <= MQTX_JW_MAX_DEPTH) {
		unsigned char *st = &w->first[w->depth - 1];
		if (!(*st & JW_FIRST))
			mqtx_buf_addc(w->b, ',');
		*st &= (unsigned char)~JW_FIRST;
	}
	mqtx_json_add_cstr(w->b, k);
	mqtx_buf_addc(w->b, ':');
}

void mqtx_jw_str(struct mqtx_jw *w, const char *s)
{
	before_value(w);
	mqtx_json_add_cstr(w->b, s);
}

void mqtx_jw_strn(struct mqtx_jw *w, const char *s, size_t len)
{
	before_value(w);
	mqtx_json_add_str(w->b, s, len);
}

void mqtx_jw_int(struct mqtx_jw *w, int64_t v)
{
	before_value(w);
	mqtx_buf_add_i64(w->b, v);
}

void mqtx_jw_int_or_null(struct mqtx_jw *w, int64_t v)
{
	before_value(w);
	if (v < 0)
		mqtx_buf_adds(w->b, "null");
	else
		mqtx_buf_add_i64(w->b, v);
}

void mqtx_jw_bool(struct mqtx_jw *w, bool v)
{
	before_value(w);
	mqtx_buf_adds(w->b, v ? "true" : "false");
}

void mqtx_jw_null(struct mqtx_jw *w)
{
	before_value(w);
	mqtx_buf_adds(w->b, "null");
}

void mqtx_jw_secs(struct mqtx_jw *w, int64_t ms)
{
	before_value(w);
	mqtx_buf_printf(w->b, "%.3f", (double)ms / 1000.0);
}

void mqtx_jw_raw(struct mqtx_jw *w, const char *json)
{
	before_value(w);
	mqtx_buf_adds(w->b, json);
}

void mqtx_jw_kstr(struct mqtx_jw *w, const char *k, const char *s)
{
	mqtx_jw_key(w, k);
	mqtx_jw_str(w, s);
}

void mqtx_jw_kint(struct mqtx_jw *w, const char *k, int64_t v)
{
	mqtx_jw_key(w, k);
	mqtx_jw_int(w, v);
}

void mqtx_jw_kint_or_null(struct mqtx_jw *w, const char *k, int64_t v)
{
	mqtx_jw_key(w, k);
	mqtx_jw_int_or_null(w, v);
}

void mqtx_jw_kbool(struct mqtx_jw *w, const char *k, bool v)
{
	mqtx_jw_key(w, k);
	mqtx_jw_bool(w, v);
}

void mqtx_jw_knull(struct mqtx_jw *w, const char *k)
{
	mqtx_jw_key(w, k);
	mqtx_jw_null(w);
}

void mqtx_jw_ksecs(struct mqtx_jw *w, const char *k, int64_t ms, bool null_if_negative)
{
	mqtx_jw_key(w, k);
	if (ms < 0 && null_if_negative)
		mqtx_jw_null(w);
	else
		mqtx_jw_secs(w, ms);
}

/* ------------------------------------------------------------ Prometheus */

static bool name_ok(const char *s, bool colon)
{
	if (s == NULL || s[0] == '\0')
		return false;
	for (size_t i = 0; s[i] != '\0'; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

bool mqtx_prom_metric_name_ok(const char *name)
{
	return name_ok(name, true);
}

bool mqtx_prom_label_name_ok(const char *name)
{
	return name_ok(name, false) && strncmp(name, "__", 2) != 0;
}

void mqtx_prom_add_label_value(struct mqtx_buf *b, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			mqtx_buf_addc(b, '\\');
		if (*s == '\n') {
			mqtx_buf_adds(b, "\\n");
			continue;
		}
		mqtx_buf_addc(b, *s);
	}
}

void mqtx_prom_add_help(struct mqtx_buf *b, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '\\')
			mqtx_buf_adds(b, "\\\\");
		else if (*s == '\n')
			mqtx_buf_adds(b, "\\n");
		else
			mqtx_buf_addc(b, *s);
	}
}

void mqtx_prom_family(struct mqtx_buf *b, const char *name, const char *type, const char *help)
{
	mqtx_buf_printf(b, "# HELP %s ", name);
	mqtx_prom_add_help(b, help);
	mqtx_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

void mqtx_prom_sample(struct mqtx_buf *b, const char *name, const struct mqtx_prom_label *labels, size_t n_labels,
		      const char *value)
{
	mqtx_buf_adds(b, name);
	if (n_labels > 0) {
		mqtx_buf_addc(b, '{');
		for (size_t i = 0; i < n_labels; i++) {
			if (i > 0)
				mqtx_buf_addc(b, ',');
			mqtx_buf_adds(b, labels[i].name);
			mqtx_buf_adds(b, "=\"");
			mqtx_prom_add_label_value(b, labels[i].value);
			mqtx_buf_addc(b, '"');
		}
		mqtx_buf_addc(b, '}');
	}
	mqtx_buf_addc(b, ' ');
	mqtx_buf_adds(b, value);
	mqtx_buf_addc(b, '\n');
}

void mqtx_prom_sample_int(struct mqtx_buf *b, const char *name, const struct mqtx_prom_label *labels, size_t n_labels,
			  int64_t v)
{
	char num[MQTX_I64_DIGITS];
	mqtx_fmt_i64(num, v);
	mqtx_prom_sample(b, name, labels, n_labels, num);
}

void mqtx_prom_sample_secs(struct mqtx_buf *b, const char *name, const struct mqtx_prom_label *labels, size_t n_labels,
			   int64_t ms)
{
	char num[48];
	snprintf(num, sizeof(num), "%.3f", (double)(ms < 0 ? 0 : ms) / 1000.0);
	mqtx_prom_sample(b, name, labels, n_labels, num);
}

/* ------------------------------------------------------------ CSV */

void mqtx_csv_fieldn(struct mqtx_buf *b, const char *s, size_t len)
{
	if (s == NULL)
		return;
	bool quote = false;
	for (size_t i = 0; i < len && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
	if (!quote) {
		mqtx_buf_add(b, s, len);
		return;
	}
	mqtx_buf_addc(b, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"')
			mqtx_buf_addc(b, '"');
		mqtx_buf_addc(b, s[i]);
	}
	mqtx_buf_addc(b, '"');
}

void mqtx_csv_field(struct mqtx_buf *b, const char *s)
{
	mqtx_csv_fieldn(b, s, s ? strlen(s) : 0);
}

void mqtx_csv_row(struct mqtx_buf *b, const char *const *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			mqtx_buf_addc(b, ',');
		mqtx_csv_field(b, fields[i]);
	}
	mqtx_buf_addc(b, '\n');
}

int mqtx_render_write_file(const char *path, const char *what, const char *doc, size_t len, struct mqtx_err *err)
{
	struct mqtx_buf tmp = MQTX_BUF_INIT;
	mqtx_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp.data, "w");
	bool ok = f != NULL && fwrite(doc, 1, len, f) == len;
	int e = errno;
	if (f != NULL && fclose(f) != 0 && ok) {
		ok = false;
		e = errno;
	}
	if (ok && rename(tmp.data, path) != 0) {
		ok = false;
		e = errno;
	}
	if (!ok) {
		mqtx_err_set(err, MQTX_E_IO, "cannot write %s '%s': %s", what, path, strerror(e));
		unlink(tmp.data);
	}
	mqtx_buf_free(&tmp);
	return ok ? 0 : -1;
}
