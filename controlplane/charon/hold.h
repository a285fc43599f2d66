/* The speaker hold (hold.c): while a node of a pair may not originate IKE requests (no standby
 * peer and no witness lease, docs/ha.md), what charon would start on its own is deferred. */
#ifndef MEDIX_CP_CHARON_HOLD_H
#define MEDIX_CP_CHARON_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wraps charon's processor so that IKE_SA rekeys, reauthentications, lifetime deletes and
 * MOBIKE roams wait while held. After charon->initialize, before its threads start. */
void medix_hold_start(void);
/* Queues a CHILD_SA expiry while held (true); false: not held, the caller goes on. */
bool medix_hold_expire(uint32_t spi, const char* dst, bool hard);
/* Whether a packet of the IKE_SA's request with this message ID left this node (through the
 * sender, past the witness's check). */
bool medix_hold_request_left(uint32_t unique_id, uint32_t mid);
/* The IKE_SA's tasks were put back in its queue (a reset): initiated now, or when the hold ends
 * (so that the node speaks first by the lease or with a standby peer). `id` is cloned. */
struct ike_sa_id_t;
/* While held, keeps `run(arg)` for when the hold ends (true); false: not held, the caller runs it. */
bool medix_hold_defer(void (*run)(void* arg), void* arg);
void medix_hold_requeued(struct ike_sa_id_t* id);
/* The IKE_SA's request `mid` never left this node and the peer still expects it (a raise of the
 * responding ID alone): its packet as charon built it goes now, or when the hold ends (once per
 * request), and the responding ID is raised to `responding` once no exchange of ours is in flight
 * (its answer came). Not rebuilt: a second request under one message ID makes libstrongswan's
 * sequential IV generator refuse the responses of lower IDs that follow. */
struct ike_sa_t;
void medix_hold_resend(struct ike_sa_t* ike_sa, uint32_t mid, uint32_t responding);
/* The IKE_SA's responding ID raised to `responding` once no exchange of ours is in flight (the
 * other node answered the peer's requests without the lease: cp_charon_raise_responding). The
 * other node's `response` to request responding - 1 (copied; NULL: none), kept once raised, is sent
 * for the peer's retransmit of that request while charon's responding ID stays there. */
void medix_hold_raise_responding(struct ike_sa_t* ike_sa, uint32_t responding, const uint8_t* response,
                                 size_t response_len);

#endif
