/* The subcommands: each file defines its cmd_NAME_info (help and hooks, see
 * struct mqtx_cmd_info); cmd/mqtx.c holds the command table. */
#ifndef MQTX_CMD_COMMANDS_H
#define MQTX_CMD_COMMANDS_H

#include "common.h"

extern const struct mqtx_cmd_info cmd_init_info;
extern const struct mqtx_cmd_info cmd_relay_info;
extern const struct mqtx_cmd_info cmd_check_info;
extern const struct mqtx_cmd_info cmd_redeliver_info;
extern const struct mqtx_cmd_info cmd_txpub_info;
extern const struct mqtx_cmd_info cmd_dedupe_audit_info;
extern const struct mqtx_cmd_info cmd_config_info;

#endif
