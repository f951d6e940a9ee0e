/* mqtx config's listings (see config.h). */
#define _POSIX_C_SOURCE 200809L
#include "render/config.h"

#include <stdlib.h>

#include "render/rows.h"

void mqtx_render_config_keys(struct mqtx_render *r)
{
	for (size_t i = 0; i < mqtx_config_key_count(); i++) {
		char *env = mqtx_config_env_name(i);
		const char *d = mqtx_config_key_default(i);
		const char *f[] = {mqtx_config_key_name(i), mqtx_config_key_type(i), d ? d : "",
				   mqtx_config_key_env(i) ? env : "-", mqtx_config_key_help(i)};
		mqtx_render_tsv_row(r, f, sizeof(f) / sizeof(f[0]));
		free(env);
	}
}

void mqtx_render_config_values(struct mqtx_render *r, const struct mqtx_config *cfg)
{
	for (size_t i = 0; i < mqtx_config_key_count(); i++) {
		char *v = mqtx_config_value_text(cfg, i);
		const char *origin = cfg->origin[i] ? cfg->origin[i] : "default";
		mqtx_render_printf(r, "%s = %s\t# %s\n", mqtx_config_key_name(i), v, origin);
		free(v);
	}
}
