/* Backend registry and the wrappers commands call. */
#include "broker/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

static const struct mqtx_backend_ops *const registry[] = {
	&mqtx_backend_amqp,
	&mqtx_backend_kafka,
	&mqtx_backend_nats,
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
		mqtx_err_set(err, MQTX_E_CONFIG, "broker URL '%s' has no scheme (expected %s)", r,
			     mqtx_broker_schemes_text());
		free(r);
		return NULL;
	}
	size_t sl = (size_t)(sep - url);
	const struct mqtx_backend_ops *ops = mqtx_broker_of_url(url);
	if (ops != NULL)
		return ops;
	mqtx_err_set(err, MQTX_E_CONFIG, "unsupported broker URL scheme '%.*s' (expected %s)", (int)(sl > 20 ? 20 : sl),
		     url, mqtx_broker_schemes_text());
	return NULL;
}

const struct mqtx_backend_ops *mqtx_broker_of_url(const char *url)
{
	const char *sep = url != NULL ? strstr(url, "://") : NULL;
	if (sep == NULL)
		return NULL;
	size_t sl = (size_t)(sep - url);
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (const char *const *s = registry[i]->schemes; *s != NULL; s++)
			if (strlen(*s) == sl && strncmp(*s, url, sl) == 0)
				return registry[i];
	return NULL;
}

struct mqtx_backend *mqtx_backend_open(const struct mqtx_config *cfg, const struct mqtx_backend_opts *opts,
				       struct mqtx_err *err)
{
	const struct mqtx_backend_ops *ops = mqtx_backend_find(cfg->broker_url, err);
	if (ops == NULL)
		return NULL;
	if (cfg->n_kafka_props > 0 && !mqtx_broker_can(ops, MQTX_CAP_PROPERTIES))
		mqtx_warn("broker.kafka is set, but the %s broker takes no client property map: its %zu setting(s) are ignored",
			  ops->name, cfg->n_kafka_props);
	struct mqtx_backend *b = ops->open(cfg, opts, err);
	if (b != NULL)
		b->mode = opts->mode;
	return b;
}

void mqtx_backend_close(struct mqtx_backend *b)
{
	if (b != NULL)
		b->ops->close(b);
}

int mqtx_backend_validate(const struct mqtx_backend_ops *ops, struct mqtx_backend *b, const struct mqtx_msg *m,
			  char *why, size_t len)
{
	for (size_t i = 0; i < m->n_headers; i++) {
		if (strncmp(m->headers[i].name, "x-mqtx-", 7) == 0) {
			snprintf(why, len,
				 "header '%.100s': names starting with 'x-mqtx-' are reserved for mqtx's own headers",
				 m->headers[i].name);
			return -1;
		}
	}
	return ops->validate != NULL ? ops->validate(b, m, why, len) : 0;
}

int mqtx_backend_publish(struct mqtx_backend *b, struct mqtx_msg *msgs, size_t n, struct mqtx_err *err)
{
	/* Nothing of the batch is handed over before every message passed:
	 * a message the protocol cannot carry would otherwise break the
	 * connection (AMQP) with the others of the batch in flight. */
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		msgs[i].permanent = false;
		if (mqtx_backend_validate(b->ops, b, &msgs[i], msgs[i].error, sizeof(msgs[i].error)) < 0) {
			msgs[i].state = MQTX_MSG_FAILED;
			msgs[i].permanent = true;
			bad++;
		} else {
			msgs[i].state = MQTX_MSG_PENDING;
			msgs[i].error[0] = '\0';
		}
	}
	if (bad == 0)
		return b->ops->publish(b, msgs, n, err);
	if (b->mode == MQTX_PUB_TX) {
		/* one transaction: all or none, so none */
		for (size_t i = 0; i < n; i++)
			if (!msgs[i].permanent)
				snprintf(msgs[i].error, sizeof(msgs[i].error),
					 "not sent: another message of the transaction cannot be carried");
		return 0;
	}
	/* The others go, except those behind a refused one of their ordering key. */
	struct mqtx_keyset refused = {0};
	struct mqtx_msg *go = mqtx_xcalloc(n + 1, sizeof(*go));
	size_t *from = mqtx_xcalloc(n + 1, sizeof(size_t));
	size_t ng = 0;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].permanent)
			mqtx_keyset_add(&refused, msgs[i].ordering_key);
		else if (!mqtx_keyset_has(&refused, msgs[i].ordering_key)) {
			go[ng] = msgs[i];
			from[ng++] = i;
		}
	}
	mqtx_keyset_free(&refused);
	int rc = ng > 0 ? b->ops->publish(b, go, ng, err) : 0;
	for (size_t k = 0; k < ng; k++) {
		struct mqtx_msg *m = &msgs[from[k]];
		m->state = go[k].state;
		m->permanent = go[k].permanent;
		memcpy(m->error, go[k].error, sizeof(m->error));
	}
	free(go);
	free(from);
	return rc;
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

const struct mqtx_backend_ops *mqtx_backend_ops_of(const struct mqtx_backend *b)
{
	return b->ops;
}

bool mqtx_broker_can(const struct mqtx_backend_ops *ops, enum mqtx_broker_cap cap)
{
	return ops != NULL && (ops->caps & (unsigned)cap) == (unsigned)cap;
}

const char *mqtx_broker_name(const struct mqtx_backend_ops *ops)
{
	return ops->name;
}

const char *mqtx_broker_dest_noun(const struct mqtx_backend_ops *ops)
{
	return ops->dest_noun != NULL ? ops->dest_noun : "destination";
}

const struct mqtx_backend_ops *mqtx_broker_at(size_t i)
{
	return i < sizeof(registry) / sizeof(registry[0]) ? registry[i] : NULL;
}

char *mqtx_broker_schemes_with(enum mqtx_broker_cap cap, char *buf, size_t len)
{
	size_t total = 0, k = 0;
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (const char *const *s = registry[i]->schemes; *s != NULL && mqtx_broker_can(registry[i], cap); s++)
			total++;
	size_t off = 0;
	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (const char *const *s = registry[i]->schemes; *s != NULL && mqtx_broker_can(registry[i], cap);
		     s++, k++) {
			const char *sep = k == 0 ? "" : k + 1 == total ? " or " : ", ";
			if (off + 1 >= len)
				return buf; /* cut short */
			int w = snprintf(buf + off, len - off, "%s%s://", sep, *s);
			off = w < 0 ? len : off + (size_t)w;
		}
	return buf;
}

const char *mqtx_broker_schemes_text(void)
{
	static char text[256];
	if (text[0] == '\0')
		mqtx_broker_schemes_with(0, text, sizeof(text));
	return text;
}

int mqtx_broker_read(const struct mqtx_backend_ops *ops, const struct mqtx_read_opts *o, struct mqtx_read_result *res,
		     struct mqtx_err *err)
{
	memset(res, 0, sizeof(*res));
	if (mqtx_broker_read_check(ops, o, err) < 0)
		return -1;
	return ops->read(o, res, err);
}

int mqtx_broker_read_check(const struct mqtx_backend_ops *ops, const struct mqtx_read_opts *o, struct mqtx_err *err)
{
	if (ops->read == NULL || !mqtx_broker_can(ops, MQTX_CAP_READ))
		return mqtx_err_set(err, MQTX_E_USAGE, "the %s backend cannot be read as an audit source", ops->name);
	if (o->to.kind == MQTX_READ_POS_FIRST)
		return mqtx_err_set(err, MQTX_E_USAGE, "--to first reads nothing");
	if (o->destructive && !mqtx_broker_can(ops, MQTX_CAP_DESTRUCTIVE_READ)) {
		char *where = mqtx_redact(o->url);
		int rc =
			mqtx_err_set(err, MQTX_E_USAGE,
				     "--destructive is for queues, which are read by consuming them; reading '%s' never changes it",
				     where);
		free(where);
		return rc;
	}
	return ops->read_check != NULL ? ops->read_check(o, err) : 0;
}

int mqtx_backend_password(const struct mqtx_config *cfg, char **out, struct mqtx_err *err)
{
	*out = NULL;
	if (cfg->broker_password_file == NULL || cfg->broker_password_file[0] == '\0')
		return 0;
	*out = mqtx_read_secret_file(cfg->broker_password_file, err);
	return *out == NULL ? -1 : 0;
}
