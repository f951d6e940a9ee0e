/* Backend registry and the wrappers commands call. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct mqtx_backend_ops *const registry[] = {
	&mqtx_backend_amqp,
	&mqtx_backend_kafka,
};

const struct mqtx_backend_ops *mqtx_backend_find(const char *url, struct mqtx_err *err)
{
	if (url == NULL || url[0] == '\0') {
		mqtx_err_set(err, MQTX_E_CONFIG, "no broker URL (set --broker-url, MQTX_BROKER_URL or broker.url)");
		return NULL;
	}
	const char *sep = strstr(url, "://");
	if (sep == NULL) {
		char *r = mqtx_redact(url);
		mqtx_err_set(err, MQTX_E_CONFIG, "broker URL '%s' has no scheme (expected amqp://, amqps://, kafka:// or kafkas://)", r);
		free(r);
		return NULL;
	}
	size_t sl = (size_t)(sep - url);
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (const char *const *s = registry[i]->schemes; *s != NULL; s++)
			if (strlen(*s) == sl && strncmp(*s, url, sl) == 0)
				return registry[i];
	mqtx_err_set(err, MQTX_E_CONFIG, "unsupported broker URL scheme '%.*s' (expected amqp, amqps, kafka or kafkas)",
		     (int)(sl > 20 ? 20 : sl), url);
	return NULL;
}

struct mqtx_backend *mqtx_backend_open(const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
				       struct mqtx_err *err)
{
	const struct mqtx_backend_ops *ops = mqtx_backend_find(cfg->broker_url, err);
	if (ops == NULL)
		return NULL;
	return ops->open(cfg, opts, err);
}

void mqtx_backend_close(struct mqtx_backend *b)
{
	if (b != NULL)
		b->ops->close(b);
}

int mqtx_backend_publish(struct mqtx_backend *b, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	return b->ops->publish(b, msgs, n, err);
}

int mqtx_backend_inspect(struct mqtx_backend *b, const char *destination, const char *queue,
			 struct mqtx_dest_info *info, struct mqtx_err *err)
{
	if (b->ops->inspect == NULL)
		return mqtx_err_set(err, MQTX_E_BROKER, "the %s backend cannot inspect destinations", b->ops->name);
	return b->ops->inspect(b, destination, queue, info, err);
}

int mqtx_backend_consume(struct mqtx_backend *b, const struct mqtx_consume_opts *o, const struct mqtx_delivery **out,
			 struct mqtx_err *err)
{
	*out = NULL;
	if (b->ops->consume == NULL)
		return mqtx_err_set(err, MQTX_E_BROKER, "the %s backend cannot consume messages", b->ops->name);
	return b->ops->consume(b, o, out, err);
}

int mqtx_backend_consume_ack(struct mqtx_backend *b, struct mqtx_err *err)
{
	if (b->ops->consume_ack == NULL)
		return mqtx_err_set(err, MQTX_E_BROKER, "the %s backend cannot consume messages", b->ops->name);
	return b->ops->consume_ack(b, err);
}

const char *mqtx_backend_name(const struct mqtx_backend *b)
{
	return b->ops->name;
}

bool mqtx_backend_has_fenced_transactions(const struct mqtx_backend_ops *ops)
{
	return ops->fenced_transactions;
}

int mqtx_backend_password(const struct mqtx_config *cfg, char **out, struct mqtx_err *err)
{
	*out = NULL;
	if (cfg->broker_password_file == NULL || cfg->broker_password_file[0] == '\0')
		return 0;
	*out = mqtx_read_secret_file(cfg->broker_password_file, err);
	return *out == NULL ? -1 : 0;
}
