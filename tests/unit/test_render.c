/* lib/render: the context, the JSON writer, Prometheus, CSV, tables. */
#include <stdlib.h>
#include <string.h>

#include "render/render.h"
#include "unit.h"

TEST(render_buffer_context)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_printf(&r, "%s=%d", "a", 1);
	mqtx_render_puts(&r, ";");
	mqtx_render_add(&r, "xy", 1);
	CHECK_STR(r.b.data, "a=1;x");
	CHECK(mqtx_render_sgr(&r, MQTX_SGR_BOLD)[0] == '\0');
	CHECK(mqtx_render_finish(&r) == 0);
	CHECK_STR(r.b.data, "a=1;x"); /* a buffer context keeps its output */
	mqtx_render_free(&r);

	mqtx_render_init_file(&r, NULL, true);
	CHECK_STR(mqtx_render_sgr(&r, MQTX_SGR_BOLD), "\033[1m");
	mqtx_render_free(&r);
}

TEST(render_file_context)
{
	FILE *f = tmpfile();
	CHECK(f != NULL);
	if (f == NULL)
		return;
	struct mqtx_render r;
	mqtx_render_init_file(&r, f, false);
	for (int i = 0; i < 10000; i++) /* more than one chunk */
		mqtx_render_printf(&r, "line %05d\n", i);
	CHECK(mqtx_render_finish(&r) == 0);
	CHECK(ftell(f) == 10000 * 11);
	rewind(f);
	char line[32];
	CHECK(fgets(line, sizeof(line), f) != NULL);
	CHECK_STR(line, "line 00000\n");
	fclose(f);
}

TEST(render_cell_and_table)
{
	char out[64];
	mqtx_render_cell(NULL, 10, out, sizeof(out));
	CHECK_STR(out, "-");
	mqtx_render_cell("short", 10, out, sizeof(out));
	CHECK_STR(out, "short");
	mqtx_render_cell("abcdefghijkl", 10, out, sizeof(out));
	CHECK_STR(out, "abcdefg...");
	/* never cuts inside a UTF-8 sequence: "é" is 2 bytes at 6-7 */
	mqtx_render_cell("abcdef\xc3\xa9ghijk", 10, out, sizeof(out));
	CHECK_STR(out, "abcdef...");
	mqtx_render_age(-1, out, sizeof(out));
	CHECK_STR(out, "-");

	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	static const struct mqtx_table_col cols[] = {{"name", 6, false}, {"rows", 5, true}};
	mqtx_table_header(&r, cols, 2, "  x");
	const char *cells[] = {"ab", "12"};
	mqtx_table_cells(&r, cols, 2, cells);
	mqtx_render_puts(&r, "\n");
	CHECK_STR(r.b.data, "name    rows  x\nab        12\n");
	mqtx_render_free(&r);

	mqtx_render_init_file(&r, NULL, true);
	mqtx_table_header(&r, cols, 1, NULL);
	CHECK_STR(r.b.data, "\033[1mname  \033[0m\n");
	mqtx_render_free(&r);
}

TEST(render_json_writer)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	struct mqtx_jw w;
	mqtx_jw_init(&w, &b);
	mqtx_jw_obj(&w);
	mqtx_jw_kint(&w, "a", -5);
	mqtx_jw_kstr(&w, "s", "q\"b\\n\n\t\x01\xff");
	mqtx_jw_kstr(&w, "n", NULL);
	mqtx_jw_kint_or_null(&w, "u", -1);
	mqtx_jw_kint_or_null(&w, "k", 7);
	mqtx_jw_kbool(&w, "t", true);
	mqtx_jw_ksecs(&w, "sec", 1250, false);
	mqtx_jw_ksecs(&w, "neg", -1, true);
	mqtx_jw_ksecs(&w, "neg2", -1500, false);
	mqtx_jw_key(&w, "arr");
	mqtx_jw_arr(&w);
	mqtx_jw_int(&w, 1);
	mqtx_jw_str(&w, "x");
	mqtx_jw_obj(&w);
	mqtx_jw_obj_end(&w);
	mqtx_jw_arr(&w);
	mqtx_jw_arr_end(&w);
	mqtx_jw_null(&w);
	mqtx_jw_raw(&w, "2.5");
	mqtx_jw_strn(&w, "a\0b", 3);
	mqtx_jw_arr_end(&w);
	mqtx_jw_knull(&w, "z");
	mqtx_jw_obj_end(&w);
	CHECK_STR(b.data, "{\"a\":-5,\"s\":\"q\\\"b\\\\n\\n\\t\\u0001\xEF\xBF\xBD\",\"n\":null,\"u\":null,\"k\":7,"
			  "\"t\":true,\"sec\":1.250,\"neg\":null,\"neg2\":-1.500,\"arr\":[1,\"x\",{},[],null,2.5,"
			  "\"a\\u0000b\"],\"z\":null}");
	mqtx_buf_free(&b);

	/* top-level array of objects */
	mqtx_jw_init(&w, &b);
	mqtx_jw_arr(&w);
	for (int i = 0; i < 3; i++) {
		mqtx_jw_obj(&w);
		mqtx_jw_kint(&w, "i", i);
		mqtx_jw_obj_end(&w);
	}
	mqtx_jw_arr_end(&w);
	CHECK_STR(b.data, "[{\"i\":0},{\"i\":1},{\"i\":2}]");
	CHECK(w.depth == 0);
	mqtx_buf_free(&b);
}

TEST(render_prometheus)
{
	CHECK(mqtx_prom_metric_name_ok("mqtx_check_status"));
	CHECK(mqtx_prom_metric_name_ok("a:b_c1"));
	CHECK(!mqtx_prom_metric_name_ok("1abc"));
	CHECK(!mqtx_prom_metric_name_ok("a-b"));
	CHECK(!mqtx_prom_metric_name_ok(""));
	CHECK(mqtx_prom_label_name_ok("outbox"));
	CHECK(!mqtx_prom_label_name_ok("a:b"));
	CHECK(!mqtx_prom_label_name_ok("__name__"));

	struct mqtx_buf b = MQTX_BUF_INIT;
	mqtx_prom_family(&b, "m_x", "gauge", "Help with \\ and\nnewline");
	struct mqtx_prom_label l[] = {{"outbox", "public.\"ob\"\\x\ny"}, {"status", "pending"}};
	mqtx_prom_sample_int(&b, "m_x", l, 2, 42);
	mqtx_prom_sample_int(&b, "m_x", NULL, 0, -3);
	mqtx_prom_sample_secs(&b, "m_s", l + 1, 1, 1500);
	mqtx_prom_sample_secs(&b, "m_s", l + 1, 1, -1);
	mqtx_prom_sample(&b, "m_r", NULL, 0, "NaN");
	CHECK_STR(b.data, "# HELP m_x Help with \\\\ and\\nnewline\n# TYPE m_x gauge\n"
			  "m_x{outbox=\"public.\\\"ob\\\"\\\\x\\ny\",status=\"pending\"} 42\n"
			  "m_x -3\n"
			  "m_s{status=\"pending\"} 1.500\n"
			  "m_s{status=\"pending\"} 0.000\n"
			  "m_r NaN\n");
	mqtx_buf_free(&b);
}

TEST(render_csv)
{
	struct mqtx_buf b = MQTX_BUF_INIT;
	const char *f[] = {"plain", NULL, "a,b", "say \"hi\"", "two\nlines", "cr\r", ""};
	mqtx_csv_row(&b, f, sizeof(f) / sizeof(f[0]));
	CHECK_STR(b.data, "plain,,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\",\n");
	mqtx_buf_reset(&b);
	mqtx_csv_fieldn(&b, "x,\0y", 4);
	CHECK(b.len == 6 && memcmp(b.data, "\"x,\0y\"", 6) == 0);
	mqtx_buf_free(&b);
}
