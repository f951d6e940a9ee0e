/* The subcommands' entry points and help descriptions. */
#ifndef MQTX_CMD_COMMANDS_H
#define MQTX_CMD_COMMANDS_H

#include "common.h"

int cmd_init(int argc, char **argv);
int cmd_relay(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_redeliver(int argc, char **argv);
int cmd_txpub(int argc, char **argv);
int cmd_dedupe_audit(int argc, char **argv);
int cmd_config(int argc, char **argv);

extern const struct mqtx_cmd_info cmd_init_info;
extern const struct mqtx_cmd_info cmd_relay_info;
extern const struct mqtx_cmd_info cmd_check_info;
extern const struct mqtx_cmd_info cmd_redeliver_info;
extern const struct mqtx_cmd_info cmd_txpub_info;
extern const struct mqtx_cmd_info cmd_dedupe_audit_info;
extern const struct mqtx_cmd_info cmd_config_info;

#endif
