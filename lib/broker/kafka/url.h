/* kafka[s]:// URLs, parsed once for the Kafka backend (broker.url) and the
 * dedupe-audit Kafka reader (a source: the same URL plus /TOPIC). */
#ifndef MQTX_KAFKA_URL_H
#define MQTX_KAFKA_URL_H

#include <stdbool.h>

#include "base/error.h"

struct mqtx_kafka_url {
	char *servers;  /* "host:port[,host:port...]"; "" only for a source without brokers */
	char *user;     /* percent-decoded; NULL when the URL has none */
	char *password; /* percent-decoded; NULL when the URL has none; wiped by _free */
	char *topic;    /* a source's /TOPIC, percent-decoded; NULL when none */
	bool tls;       /* kafkas:// */
};

/* Parses kafka[s]://[user[:password]@]host:port[,host:port...][/] into u
 * (owned by the caller: mqtx_kafka_url_free). With as_source, the URL is a
 * dedupe-audit source: it may end in /TOPIC, and may name no brokers
 * (kafka:///TOPIC); its errors are usage errors. where names the URL in
 * messages (redacted by the caller). Returns 0, or -1 with err. */
int mqtx_kafka_url_parse(const char *url, const char *where, bool as_source, struct mqtx_kafka_url *u,
			 struct mqtx_err *err);
void mqtx_kafka_url_free(struct mqtx_kafka_url *u);

#endif
