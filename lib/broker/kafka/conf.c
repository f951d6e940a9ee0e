/* Shared librdkafka configuration (see conf.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "broker/kafka/conf.h"

#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "base/log.h"

/* librdkafka's own messages, called from its threads: through the log, so
 * they keep --log-format and -q/-v (its default logger writes raw lines to
 * stderr). Connection failures ("FAIL") also reach the error callbacks,
 * which decide how loud they are. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 4 && strcmp(fac, "FAIL") != 0) /* syslog levels: emerg .. warning */
		mqtx_warn("kafka: %s: %s", fac, buf);
	else
		mqtx_debug("kafka: %s: %s", fac, buf);
}

int mqtx_kafka_conf_begin(struct mqtx_kafka_conf *kc, rd_kafka_conf_t *conf, const struct mqtx_config *cfg,
			  const struct mqtx_kafka_url *u, struct mqtx_err *err)
{
	rd_kafka_conf_set_log_cb(conf, on_log);
	kc->conf = conf;
	kc->cfg = cfg;
	kc->file_password = NULL;
	kc->password = u->password;
	if (mqtx_backend_password(cfg, &kc->file_password, err) < 0)
		return -1;
	if (kc->file_password != NULL)
		kc->password = kc->file_password;
	return 0;
}

void mqtx_kafka_conf_end(struct mqtx_kafka_conf *kc)
{
	if (kc->file_password != NULL) {
		explicit_bzero(kc->file_password, strlen(kc->file_password));
		free(kc->file_password);
	}
	kc->file_password = NULL;
	kc->password = NULL;
}

bool mqtx_kafka_conf_leaks(const struct mqtx_kafka_conf *kc, const char *text)
{
	if (kc->password != NULL && kc->password[0] != '\0' && strstr(text, kc->password) != NULL)
		return true;
	for (size_t i = 0; i < kc->cfg->n_kafka_props; i++) {
		const char *v = kc->cfg->kafka_props[i].value;
		if (v != NULL && v[0] != '\0' && strstr(text, v) != NULL)
			return true;
	}
	return false;
}

int mqtx_kafka_conf_set(const struct mqtx_kafka_conf *kc, const char *name, const char *value, const char *origin,
			struct mqtx_err *err)
{
	char errstr[512];
	rd_kafka_conf_res_t r = rd_kafka_conf_set(kc->conf, name, value != NULL ? value : "", errstr, sizeof(errstr));
	if (r == RD_KAFKA_CONF_OK)
		return 0;
	if (r == RD_KAFKA_CONF_UNKNOWN)
		return mqtx_err_set(err, MQTX_E_CONFIG, "unknown Kafka property '%s' (%s)", name, origin);
	if ((value != NULL && value[0] != '\0' && strstr(errstr, value) != NULL) || mqtx_kafka_conf_leaks(kc, errstr))
		return mqtx_err_set(err, MQTX_E_CONFIG, "invalid value for Kafka property '%s' (%s)", name, origin);
	return mqtx_err_set(err, MQTX_E_CONFIG, "invalid value for Kafka property '%s' (%s): %s", name, origin, errstr);
}

const char *mqtx_kafka_conf_user_prop(const struct mqtx_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_kafka_props; i++)
		if (strcmp(cfg->kafka_props[i].key, name) == 0)
			return cfg->kafka_props[i].value != NULL ? cfg->kafka_props[i].value : "";
	return NULL;
}

int mqtx_kafka_conf_connection(const struct mqtx_kafka_conf *kc, const struct mqtx_kafka_url *u, const char *url_origin,
			       const char *where, struct mqtx_err *err)
{
	const struct mqtx_config *cfg = kc->cfg;
	if (mqtx_kafka_conf_set(kc, "bootstrap.servers", u->servers, url_origin, err) < 0)
		return -1;
	bool sasl = u->user != NULL || kc->password != NULL;
	const char *proto = u->tls ? (sasl ? "sasl_ssl" : "ssl") : (sasl ? "sasl_plaintext" : "plaintext");
	if (mqtx_kafka_conf_set(kc, "security.protocol", proto, url_origin, err) < 0)
		return -1;
	if (sasl && mqtx_kafka_conf_set(kc, "sasl.mechanism", "PLAIN", "default", err) < 0)
		return -1;
	if (u->user != NULL && mqtx_kafka_conf_set(kc, "sasl.username", u->user, url_origin, err) < 0)
		return -1;
	if (kc->password != NULL &&
	    mqtx_kafka_conf_set(kc, "sasl.password", kc->password,
				kc->file_password != NULL ? "broker.password_file" : url_origin, err) < 0)
		return -1;

	const char *eff = mqtx_kafka_conf_user_prop(cfg, "security.protocol");
	if (eff == NULL)
		eff = proto;
	bool tls = strstr(eff, "ssl") != NULL || strstr(eff, "SSL") != NULL;
	if (tls) {
		if ((cfg->broker_tls_ca_file != NULL &&
		     mqtx_kafka_conf_set(kc, "ssl.ca.location", cfg->broker_tls_ca_file, "broker.tls.ca_file", err) <
			     0) ||
		    (cfg->broker_tls_cert_file != NULL &&
		     mqtx_kafka_conf_set(kc, "ssl.certificate.location", cfg->broker_tls_cert_file,
					 "broker.tls.cert_file", err) < 0) ||
		    (cfg->broker_tls_key_file != NULL &&
		     mqtx_kafka_conf_set(kc, "ssl.key.location", cfg->broker_tls_key_file, "broker.tls.key_file", err) <
			     0))
			return -1;
		if (mqtx_kafka_conf_set(kc, "enable.ssl.certificate.verification",
					cfg->broker_tls_verify ? "true" : "false", "broker.tls.verify", err) < 0 ||
		    (!cfg->broker_tls_verify && mqtx_kafka_conf_set(kc, "ssl.endpoint.identification.algorithm", "none",
								    "broker.tls.verify", err) < 0))
			return -1;
	}

	for (size_t i = 0; i < cfg->n_kafka_props; i++)
		if (mqtx_kafka_conf_set(kc, cfg->kafka_props[i].key, cfg->kafka_props[i].value, "broker.kafka", err) <
		    0)
			return -1;

	const char *verify = mqtx_kafka_conf_user_prop(cfg, "enable.ssl.certificate.verification");
	if (tls && ((verify == NULL && !cfg->broker_tls_verify) || (verify != NULL && strcmp(verify, "false") == 0)))
		mqtx_warn("TLS certificate verification is OFF for '%s' (%s): anyone on the path can read and change messages",
			  where,
			  verify != NULL ? "broker.kafka: enable.ssl.certificate.verification"
					 : "broker.tls.verify: false");
	return 0;
}

rd_kafka_t *mqtx_kafka_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, const struct mqtx_kafka_conf *kc,
				  const char *what, const char *where, struct mqtx_err *err)
{
	char errstr[512] = "";
	rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (rk != NULL)
		return rk;           /* it owns conf now */
	rd_kafka_conf_destroy(conf); /* rd_kafka_new() takes conf only on success */
	if (errstr[0] == '\0' || mqtx_kafka_conf_leaks(kc, errstr))
		mqtx_err_set(err, MQTX_E_CONFIG, "cannot create a Kafka %s for '%s': invalid configuration", what,
			     where);
	else
		mqtx_err_set(err, MQTX_E_CONFIG, "cannot create a Kafka %s for '%s': %s", what, where, errstr);
	return NULL;
}
