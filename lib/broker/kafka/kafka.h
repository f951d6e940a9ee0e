/* Inside the Kafka backend: what its files share. Private to lib/broker/kafka/. */
#ifndef MQTX_BROKER_KAFKA_H
#define MQTX_BROKER_KAFKA_H

#include "broker/broker.h"

/* The read op (read.c): a topic as a dedupe-audit source. */
int mqtx_kafka_read(const struct mqtx_read_opts *o, struct mqtx_read_result *res, struct mqtx_err *err);
int mqtx_kafka_read_check(const struct mqtx_read_opts *o, struct mqtx_err *err);

#endif
