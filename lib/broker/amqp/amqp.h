/* Inside the AMQP backend: what its files share. Private to lib/broker/amqp/. */
#ifndef MQTX_BROKER_AMQP_H
#define MQTX_BROKER_AMQP_H

#include "broker/broker.h"

/* The read op (read.c): a stream or (with --destructive) a queue as a
 * dedupe-audit source. */
int mqtx_amqp_read(const struct mqtx_read_opts *o, struct mqtx_read_result *res, struct mqtx_err *err);
int mqtx_amqp_read_check(const struct mqtx_read_opts *o, struct mqtx_err *err);

#endif
