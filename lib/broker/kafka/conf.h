/* The librdkafka configuration that the Kafka backend's producer, its ack
 * consumer and its audit reader share: one way to name a bad property,
 * one way to turn a kafka[s]:// URL and the broker.* keys into connection
 * settings, one way to create the client and translate its failure. */
#ifndef MQTX_KAFKA_CONF_H
#define MQTX_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "config/config.h"
#include "base/error.h"
#include "broker/kafka/url.h"

/* A configuration being filled. conf and cfg are borrowed; the password
 * read from broker.password_file is owned and wiped by _end. */
struct mqtx_kafka_conf {
	rd_kafka_conf_t *conf;
	const struct mqtx_config *cfg;
	char *file_password;  /* owned; NULL without broker.password_file */
	const char *password; /* the one in use: the file's, else the URL's; may be NULL */
};

/* Starts filling conf for the URL u, with librdkafka's log routed through
 * mqtx_log. Returns 0, or -1 with err (the password file cannot be read);
 * call _end in both cases. */
int mqtx_kafka_conf_begin(struct mqtx_kafka_conf *kc, rd_kafka_conf_t *conf, const struct mqtx_config *cfg,
			  const struct mqtx_kafka_url *u, struct mqtx_err *err);

/* Sets one property. The error names the property and origin (where the
 * value came from) and carries librdkafka's reason only when it quotes
 * neither the value nor a secret we know of. */
int mqtx_kafka_conf_set(const struct mqtx_kafka_conf *kc, const char *name, const char *value, const char *origin,
			struct mqtx_err *err);

/* The connection settings, after the caller's own defaults: the URL's
 * servers, security.protocol, SASL PLAIN credentials, the broker.tls.*
 * files and verification, then broker.kafka verbatim (so users can
 * override any of it). url_origin names the URL in errors ("broker.url");
 * where names it in the warning printed when TLS verification is off. */
int mqtx_kafka_conf_connection(const struct mqtx_kafka_conf *kc, const struct mqtx_kafka_url *u, const char *url_origin,
			       const char *where, struct mqtx_err *err);

/* broker.kafka's value for property name ("" when set empty), or NULL
 * when broker.kafka does not set it. */
const char *mqtx_kafka_conf_user_prop(const struct mqtx_config *cfg, const char *name);

/* True when text (a librdkafka message) holds a secret we know of: the
 * password in use or a broker.kafka value. Then it must not be shown. */
bool mqtx_kafka_conf_leaks(const struct mqtx_kafka_conf *kc, const char *text);

void mqtx_kafka_conf_end(struct mqtx_kafka_conf *kc);

/* rd_kafka_new() of type with conf, which it takes over: on failure conf
 * is destroyed and err (MQTX_E_CONFIG) says why, without a secret of kc's
 * (kc->conf is not used). what names the client ("producer", "consumer"),
 * where the URL (redacted). */
rd_kafka_t *mqtx_kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, const struct mqtx_kafka_conf *kc,
				  const char *what, const char *where, struct mqtx_err *err);

#endif
