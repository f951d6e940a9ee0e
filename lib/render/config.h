/* lib/render/config: mqtx config's two listings. */
#ifndef MQTX_RENDER_CONFIG_H
#define MQTX_RENDER_CONFIG_H

#include "config/config.h"
#include "render/render.h"

/* --keys: one tab-separated line per key: name, type, default (empty when
 * none), environment variable ("-" when none), help. */
void mqtx_render_config_keys(struct mqtx_render *r);
/* Every key's effective value (secrets redacted) and where it came from:
 * "name = value\t# origin" ("default" when not set). */
void mqtx_render_config_values(struct mqtx_render *r, const struct mqtx_config *cfg);

#endif
