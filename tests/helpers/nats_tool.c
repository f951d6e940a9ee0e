/*
 * nats_tool - small NATS JetStream client used by the mqtx test suite.
 *
 * Build (make helpers):
 *   cc -std=c11 -Wall -Wextra -Werror -O2 -o tests/helpers/nats_tool \
 *      tests/helpers/nats_tool.c $(pkg-config --cflags --libs libnats)
 *
 * Usage (URL is nats://host:port):
 *   nats_tool create-stream URL STREAM SUBJECT... [--dupe-window SECONDS]
 *   nats_tool delete-stream URL STREAM
 *   nats_tool info          URL STREAM
 *   nats_tool consume       URL STREAM [SUBJECT] [--expect N] [--timeout SECONDS]
 *   nats_tool publish       URL SUBJECT BODY [--msg-id ID]
 *
 * `create-stream` adds a stream (file storage, so it survives a server
 * restart) capturing the subjects; an existing stream of that name is fine. `info` prints
 *   {"name":..,"subjects":[..],"messages":N,"first_seq":N,"last_seq":N}
 * `consume` reads the stream's messages (direct message gets: nothing is
 * acknowledged or removed), in sequence order, only those whose subject is
 * SUBJECT or below it (SUBJECT.x...) when SUBJECT is given, and prints one
 * JSON object per message and line:
 *   {"stream":..,"subject":..,"seq":N,"headers":{"name":"value",...},
 *    "body":".."|null,"body_base64":"..","body_len":N}
 * "body" is null unless the payload is valid UTF-8 without NUL bytes.
 * With --expect it waits (up to --timeout, default 5 s) until the stream
 * holds at least N messages of the subject. `publish` sends one message
 * through JetStream and prints {"stream":..,"seq":N,"duplicate":bool}.
 *
 * Exit status: 0 success; 1 consume got fewer messages than --expect;
 * 2 usage, connection or server error (one line on stderr:
 * "nats_tool: <what>: <why>").
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "base/util.h"

static void die(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "nats_tool: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr, "usage: nats_tool create-stream URL STREAM SUBJECT... [--dupe-window SECONDS]\n"
			"       nats_tool delete-stream URL STREAM\n"
			"       nats_tool info URL STREAM\n"
			"       nats_tool consume URL STREAM [SUBJECT] [--expect N] [--timeout SECONDS]\n"
			"       nats_tool publish URL SUBJECT BODY [--msg-id ID]\n");
	exit(2);
}

/* ---- output ---- */

static bool is_text(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t l = p[i] == 0 ? 0 : mqtx_utf8_seq(p + i, len - i);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

/* A JSON string on stdout; bytes that are not valid UTF-8 become \u00XX. */
static void json_str(const void *data, size_t len)
{
	const unsigned char *p = data;
	putchar('"');
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t l = 1;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\r')
			fputs("\\r", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20 || c == 0x7f || (l = mqtx_utf8_seq(p + i, len - i)) == 0) {
			printf("\\u%04x", c);
			l = 1;
		} else
			fwrite(p + i, 1, l, stdout);
		i += l;
	}
	putchar('"');
}

static void base64(const unsigned char *p, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	for (i = 0; i + 2 < len; i += 3)
		printf("%c%c%c%c", tab[p[i] >> 2], tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
		       tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)], tab[p[i + 2] & 63]);
	if (len - i == 1)
		printf("%c%c==", tab[p[i] >> 2], tab[(p[i] & 3) << 4]);
	else if (len - i == 2)
		printf("%c%c%c=", tab[p[i] >> 2], tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)], tab[(p[i + 1] & 15) << 2]);
}

static void message_json(const char *stream, natsMsg *m)
{
	const char **keys = NULL;
	int nk = 0;
	const unsigned char *body = (const unsigned char *)natsMsg_GetData(m);
	size_t blen = (size_t)natsMsg_GetDataLength(m);
	fputs("{\"stream\":", stdout);
	json_str(stream, strlen(stream));
	fputs(",\"subject\":", stdout);
	json_str(natsMsg_GetSubject(m), strlen(natsMsg_GetSubject(m)));
	printf(",\"seq\":%" PRIu64 ",\"headers\":{", natsMsg_GetSequence(m));
	if (natsMsgHeader_Keys(m, &keys, &nk) == NATS_OK) {
		for (int i = 0; i < nk; i++) {
			const char *v = NULL;
			if (i > 0)
				putchar(',');
			json_str(keys[i], strlen(keys[i]));
			putchar(':');
			if (natsMsgHeader_Get(m, keys[i], &v) == NATS_OK && v != NULL)
				json_str(v, strlen(v));
			else
				fputs("null", stdout);
		}
		free((void *)keys);
	}
	fputs("},\"body\":", stdout);
	if (body != NULL && is_text(body, blen))
		json_str(body, blen);
	else
		fputs(body != NULL && blen > 0 ? "null" : "\"\"", stdout);
	fputs(",\"body_base64\":\"", stdout);
	if (body != NULL)
		base64(body, blen);
	printf("\",\"body_len\":%zu}\n", blen);
}

/* ---- client ---- */

static natsConnection *nc;
static jsCtx *js;

static void connect_to(const char *url)
{
	natsOptions *o = NULL;
	if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, url) != NATS_OK)
		die("connect", "bad URL '%s'", url);
	natsOptions_SetTimeout(o, 5000);
	natsOptions_SetAllowReconnect(o, false);
	natsStatus s = natsConnection_Connect(&nc, o);
	natsOptions_Destroy(o);
	if (s != NATS_OK)
		die("connect", "%s: %s", url, natsStatus_GetText(s));
	if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
		die("connect", "no JetStream context");
}

static void disconnect(void)
{
	jsCtx_Destroy(js);
	natsConnection_Close(nc);
	natsConnection_Destroy(nc);
	nats_Close();
}

static jsStreamInfo *stream_info(const char *stream, bool must)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s = js_GetStreamInfo(&si, js, stream, NULL, &je);
	if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
		if (must)
			die("info", "stream '%s' does not exist", stream);
		return NULL;
	}
	if (s != NATS_OK)
		die("info", "stream '%s': %s (%d)", stream, natsStatus_GetText(s), (int)je);
	return si;
}

static int cmd_create(const char *stream, const char **subjects, int n, double dupe_window)
{
	jsStreamConfig cfg;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	jsStreamConfig_Init(&cfg);
	cfg.Name = stream;
	cfg.Subjects = subjects;
	cfg.SubjectsLen = n;
	cfg.Storage = js_FileStorage;
	if (dupe_window > 0)
		cfg.Duplicates = (int64_t)(dupe_window * 1e9);
	natsStatus s = js_AddStream(&si, js, &cfg, NULL, &je);
	if (s != NATS_OK && je != JSStreamNameExistErr)
		die("create-stream", "'%s': %s (%d)", stream,
		    nats_GetLastError(NULL) ? nats_GetLastError(NULL) : natsStatus_GetText(s), (int)je);
	jsStreamInfo_Destroy(si);
	return 0;
}

static int cmd_delete(const char *stream)
{
	jsErrCode je = 0;
	natsStatus s = js_DeleteStream(js, stream, NULL, &je);
	if (s != NATS_OK && je != JSStreamNotFoundErr && s != NATS_NOT_FOUND)
		die("delete-stream", "'%s': %s (%d)", stream, natsStatus_GetText(s), (int)je);
	return 0;
}

static int cmd_info(const char *stream)
{
	jsStreamInfo *si = stream_info(stream, true);
	fputs("{\"name\":", stdout);
	json_str(stream, strlen(stream));
	fputs(",\"subjects\":[", stdout);
	for (int i = 0; i < si->Config->SubjectsLen; i++) {
		if (i > 0)
			putchar(',');
		json_str(si->Config->Subjects[i], strlen(si->Config->Subjects[i]));
	}
	printf("],\"messages\":%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
	       ",\"duplicate_window_ms\":%" PRId64 "}\n",
	       si->State.Msgs, si->State.FirstSeq, si->State.LastSeq, si->Config->Duplicates / 1000000);
	jsStreamInfo_Destroy(si);
	return 0;
}

static bool subject_matches(const char *subj, const char *want)
{
	if (want == NULL)
		return true;
	size_t n = strlen(want);
	return strncmp(subj, want, n) == 0 && (subj[n] == '\0' || subj[n] == '.');
}

static int cmd_consume(const char *stream, const char *subject, long expect, double timeout)
{
	int64_t deadline = mqtx_now_ms() + (int64_t)(timeout * 1000);
	uint64_t next = 1;
	long got = 0;
	for (;;) {
		jsStreamInfo *si = stream_info(stream, true);
		uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
		jsStreamInfo_Destroy(si);
		if (next < first)
			next = first;
		for (; next <= last && last > 0; next++) {
			natsMsg *m = NULL;
			jsErrCode je = 0;
			natsStatus s = js_GetMsg(&m, js, stream, next, NULL, &je);
			if (s == NATS_NOT_FOUND || je == JSNoMessageFoundErr)
				continue; /* deleted */
			if (s != NATS_OK)
				die("consume", "stream '%s' seq %" PRIu64 ": %s (%d)", stream, next,
				    natsStatus_GetText(s), (int)je);
			if (subject_matches(natsMsg_GetSubject(m), subject)) {
				message_json(stream, m);
				got++;
			}
			natsMsg_Destroy(m);
		}
		fflush(stdout);
		if (expect < 0 || got >= expect)
			return 0;
		if (mqtx_now_ms() >= deadline) {
			fprintf(stderr, "nats_tool: consume: expected %ld message(s) from '%s', got %ld\n", expect,
				stream, got);
			return 1;
		}
		mqtx_sleep_ms(100);
	}
}

static int cmd_publish(const char *subject, const char *body, const char *msg_id)
{
	natsMsg *m = NULL;
	jsPubAck *pa = NULL;
	jsErrCode je = 0;
	if (natsMsg_Create(&m, subject, NULL, body, (int)strlen(body)) != NATS_OK)
		die("publish", "cannot create the message");
	if (msg_id != NULL)
		natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
	natsStatus s = js_PublishMsg(&pa, js, m, NULL, &je);
	natsMsg_Destroy(m);
	if (s != NATS_OK)
		die("publish", "'%s': %s (%d)", subject, natsStatus_GetText(s), (int)je);
	fputs("{\"stream\":", stdout);
	json_str(pa->Stream, strlen(pa->Stream));
	printf(",\"seq\":%" PRIu64 ",\"duplicate\":%s}\n", pa->Sequence, pa->Duplicate ? "true" : "false");
	jsPubAck_Destroy(pa);
	return 0;
}

static long num(const char *what, const char *s)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < 0)
		die("usage", "%s: expected a number, got '%s'", what, s);
	return v;
}

int main(int argc, char **argv)
{
	const char *pos[64];
	int np = 0;
	long expect = -1;
	double timeout = 5, dupe = 0;
	const char *msg_id = NULL;
	bool dashdash = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
		} else if (!dashdash && strncmp(a, "--", 2) == 0) {
			if (i + 1 >= argc)
				usage();
			const char *v = argv[++i];
			if (strcmp(a, "--expect") == 0)
				expect = num("--expect", v);
			else if (strcmp(a, "--timeout") == 0)
				timeout = atof(v);
			else if (strcmp(a, "--dupe-window") == 0)
				dupe = atof(v);
			else if (strcmp(a, "--msg-id") == 0)
				msg_id = v;
			else
				usage();
		} else if (np < 64) {
			pos[np++] = a;
		} else {
			usage();
		}
	}
	if (np < 3)
		usage();
	const char *cmd = pos[0];
	int rc = 2;
	connect_to(pos[1]);
	if (strcmp(cmd, "create-stream") == 0 && np >= 4)
		rc = cmd_create(pos[2], pos + 3, np - 3, dupe);
	else if (strcmp(cmd, "delete-stream") == 0 && np == 3)
		rc = cmd_delete(pos[2]);
	else if (strcmp(cmd, "info") == 0 && np == 3)
		rc = cmd_info(pos[2]);
	else if (strcmp(cmd, "consume") == 0 && (np == 3 || np == 4))
		rc = cmd_consume(pos[2], np == 4 ? pos[3] : NULL, expect, timeout);
	else if (strcmp(cmd, "publish") == 0 && np == 4)
		rc = cmd_publish(pos[2], pos[3], msg_id);
	else
		usage();
	disconnect();
	return rc;
}
