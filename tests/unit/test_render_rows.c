/* lib/render/rows: TSV rows keep one line per row; the progress bar. */
#include <string.h>

#include "render/rows.h"
#include "unit.h"

TEST(render_tsv_row)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	const char *f[] = {"a", NULL, "", "tab\there", "new\nline\r\n"};
	mqtx_render_tsv_row(&r, f, 5);
	CHECK_STR(r.b.data, "a\t-\t\ttab here\tnew line  \n");
	mqtx_render_free(&r);

	mqtx_render_init_buf(&r);
	mqtx_render_tsv_row(&r, f, 1);
	CHECK_STR(r.b.data, "a\n");
	mqtx_render_free(&r);

	CHECK_STR(mqtx_render_destination(""), "(default)");
	CHECK_STR(mqtx_render_destination("orders"), "orders");
	CHECK(mqtx_render_destination(NULL) == NULL);
}

TEST(render_relay_dry_run_rows)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_relay_dry_run_header(&r);
	mqtx_render_relay_dry_run_row(&r, 7, "k\t1", "", NULL, "o", 12);
	mqtx_render_relay_dry_run_row(&r, 8, "k2", "orders", "rk\n", NULL, 0);
	CHECK_STR(r.b.data, "id\tkey\tdestination\trouting_key\tordering_key\tbytes\n"
			    "7\tk 1\t(default)\t-\to\t12\n"
			    "8\tk2\torders\trk \t-\t0\n");
	mqtx_render_free(&r);
}

TEST(render_redeliver_rows)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_redeliver_header(&r);
	struct mqtx_redeliver_row row = {.id = "3",
					 .key = "a\tb",
					 .status = "sent",
					 .destination = "",
					 .routing_key = NULL,
					 .ordering_key = "o",
					 .attempts = "1",
					 .redelivery_count = "0",
					 .created_at = "2024-05-01 12:00:00+00",
					 .sent_at = NULL};
	mqtx_render_redeliver_row(&r, &row);
	CHECK_STR(r.b.data,
		  "id\tkey\tstatus\tdestination\trouting_key\tordering_key\tattempts\tredelivery_count\tcreated_at\tsent_at\n"
		  "3\ta b\tsent\t(default)\t-\to\t1\t0\t2024-05-01 12:00:00+00\t-\n");
	mqtx_render_free(&r);
}

TEST(render_progress)
{
	struct mqtx_render r;
	mqtx_render_init_buf(&r);
	mqtx_render_progress(&r, 5, 10, 1000);
	CHECK_STR(r.b.data, "\r[###############---------------] 5/10  5.0 rows/s  ETA 1s\033[K");
	mqtx_render_free(&r);

	mqtx_render_init_buf(&r); /* done past total is capped; no ETA when finished or at time 0 */
	mqtx_render_progress(&r, 12, 10, 2000);
	CHECK_STR(r.b.data, "\r[##############################] 10/10  5.0 rows/s\033[K");
	mqtx_render_free(&r);

	mqtx_render_init_buf(&r);
	mqtx_render_progress(&r, 0, 10, 0);
	CHECK_STR(r.b.data, "\r[------------------------------] 0/10  0.0 rows/s\033[K");
	mqtx_render_free(&r);

	mqtx_render_init_buf(&r); /* no total: nothing */
	mqtx_render_progress(&r, 3, 0, 10);
	CHECK(r.b.len == 0);
	mqtx_render_progress_clear(&r);
	CHECK_STR(r.b.data, "\r\033[K");
	mqtx_render_free(&r);
}
