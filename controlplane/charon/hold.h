/* The speaker hold (hold.c): while a node of a pair may not originate IKE requests (no standby
 * peer and no witness lease, docs/ha.md), what charon would start on its own is deferred. */
#ifndef MEDIX_CP_CHARON_HOLD_H
#define MEDIX_CP_CHARON_HOLD_H

#include <stdbool.h>
#include <stdint.h>

/* Wraps charon's processor so that IKE_SA rekeys, reauthentications, lifetime deletes and
 * MOBIKE roams wait while held. After charon->initialize, before its threads start. */
void medix_hold_start(void);
/* Queues a CHILD_SA expiry while held (true); false: not held, the caller goes on. */
bool medix_hold_expire(uint32_t spi, const char* dst, bool hard);

#endif
