/* Diagnostics on stderr, as text or one JSON object per line. stdout is
 * for data only. Callers must never pass secrets; URLs go through
 * mqtx_redact() first. */
#ifndef MQTX_LOG_H
#define MQTX_LOG_H

enum mqtx_log_level { MQTX_LOG_ERROR, MQTX_LOG_WARN, MQTX_LOG_INFO, MQTX_LOG_DEBUG };
enum mqtx_log_format { MQTX_LOG_TEXT, MQTX_LOG_JSON };

void mqtx_log_setup(enum mqtx_log_level level, enum mqtx_log_format format);
enum mqtx_log_level mqtx_log_get_level(void);
enum mqtx_log_format mqtx_log_get_format(void);
void mqtx_log(enum mqtx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mqtx_error(...) mqtx_log(MQTX_LOG_ERROR, __VA_ARGS__)
#define mqtx_warn(...) mqtx_log(MQTX_LOG_WARN, __VA_ARGS__)
#define mqtx_info(...) mqtx_log(MQTX_LOG_INFO, __VA_ARGS__)
#define mqtx_debug(...) mqtx_log(MQTX_LOG_DEBUG, __VA_ARGS__)

#endif
