/* Diagnostics on stderr (see log.h). */
#define _POSIX_C_SOURCE 200809L
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "base/json.h"
#include "base/util.h"

static enum mqtx_log_level cur_level = MQTX_LOG_INFO;
static enum mqtx_log_format cur_format = MQTX_LOG_TEXT;

void mqtx_log_setup(enum mqtx_log_level level, enum mqtx_log_format format)
{
	cur_level = level;
	cur_format = format;
}

enum mqtx_log_level mqtx_log_get_level(void)
{
	return cur_level;
}

enum mqtx_log_format mqtx_log_get_format(void)
{
	return cur_format;
}

static const char *level_name(enum mqtx_log_level l)
{
	switch (l) {
	case MQTX_LOG_ERROR: return "error";
	case MQTX_LOG_WARN: return "warning";
	case MQTX_LOG_INFO: return "info";
	case MQTX_LOG_DEBUG: return "debug";
	}
	return "info";
}

void mqtx_log(enum mqtx_log_level level, const char *fmt, ...)
{
	if (level > cur_level)
		return;
	struct mqtx_buf msg = MQTX_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	mqtx_buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (msg.data == NULL)
		return;

	struct mqtx_buf line = MQTX_BUF_INIT;
	if (cur_format == MQTX_LOG_JSON) {
		char ts[40];
		struct timespec now;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		size_t k = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + k, sizeof(ts) - k, ".%03ldZ", now.tv_nsec / 1000000);
		mqtx_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_name(level));
		mqtx_json_add_str(&line, msg.data, msg.len);
		mqtx_buf_adds(&line, "}\n");
	} else {
		mqtx_buf_printf(&line, "mqtx: %s%s%s\n", level == MQTX_LOG_INFO ? "" : level_name(level),
				level == MQTX_LOG_INFO ? "" : ": ", msg.data);
	}
	fwrite(line.data, 1, line.len, stderr);
	fflush(stderr);
	mqtx_buf_free(&line);
	mqtx_buf_free(&msg);
}
