/* Tail mode: the relay's statements (see tail.h, tail_relay.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "db/tail_internal.h"

void mqtx_tail_relay_free_state(struct mqtx_tail *tl)
{
	(void)tl;
}
