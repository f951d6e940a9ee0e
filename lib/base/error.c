/* Error value helpers. */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int err_vset(struct mqtx_err *err, enum mqtx_err_kind kind, bool retriable, const char *fmt, va_list ap)
{
	if (err == NULL)
		return -1;
	err->kind = kind;
	err->retriable = retriable;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return -1;
}

int mqtx_err_set(struct mqtx_err *err, enum mqtx_err_kind kind, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(err, kind, false, fmt, ap);
	va_end(ap);
	return -1;
}

int mqtx_err_retry(struct mqtx_err *err, enum mqtx_err_kind kind, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(err, kind, true, fmt, ap);
	va_end(ap);
	return -1;
}

void mqtx_err_prefix(struct mqtx_err *err, const char *fmt, ...)
{
	char prefix[512];
	char old[sizeof(err->msg)];
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	char joined[sizeof(prefix) + sizeof(old) + 2];
	memcpy(old, err->msg, sizeof(old));
	snprintf(joined, sizeof(joined), "%s: %s", prefix, old);
	snprintf(err->msg, sizeof(err->msg), "%.*s", (int)sizeof(err->msg) - 1, joined); /* truncation is fine */
}

void mqtx_err_clear(struct mqtx_err *err)
{
	if (err == NULL)
		return;
	err->kind = MQTX_OK;
	err->retriable = false;
	err->msg[0] = '\0';
}

const char *mqtx_err_kind_name(enum mqtx_err_kind kind)
{
	switch (kind) {
	case MQTX_OK: return "ok";
	case MQTX_E_USAGE: return "usage";
	case MQTX_E_CONFIG: return "config";
	case MQTX_E_DB: return "database";
	case MQTX_E_BROKER: return "broker";
	case MQTX_E_INPUT: return "input";
	case MQTX_E_IO: return "io";
	case MQTX_E_INTERNAL: return "internal";
	}
	return "unknown";
}
