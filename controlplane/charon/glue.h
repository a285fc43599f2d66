/* The plain-C boundary between medix-cp's two halves. strongSwan's headers are C only (members
 * named `this`, `new`, `private`), so the C side (the C files in controlplane/charon) owns everything that touches
 * libcharon and the C++ side (the C++ files in cp) owns medix-dp's gRPC API; this header is all they
 * share. Strings are NUL-terminated and only valid during the call.
 *
 *   C++ -> C   cp_charon_*: start libcharon, load peers, initiate, raise expires.
 *   C -> C++   cp_dp_*:     what libcharon asks of its kernel-ipsec backend, as medix-dp
 *                           transactions (implemented in controlplane/dataplane_client.cpp).
 */
#ifndef MEDIX_CP_CHARON_GLUE_H
#define MEDIX_CP_CHARON_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- C++ -> C ----------------------------------------------------------------------------- */

/* A peer (a carrier's gateway) as libcharon needs it. Lists are comma-separated. */
struct cp_peer {
  const char* name;
  const char* local_address;
  const char* remote_address;
  const char* local_id;
  const char* remote_id;
  const char* psk;         /* "": X.509 with the three files below */
  const char* certificate; /* PEM files */
  const char* private_key;
  const char* ca_certificate;
  const char* ike_proposals; /* "aes128gcm16-prfsha256-x25519,aes256-sha256-modp2048" */
  const char* esp_proposals; /* "aes128gcm16,aes256-sha256" */
  const char* local_ts;      /* "192.168.1.0/24" */
  const char* remote_ts;
  uint32_t ike_rekey_s;         /* 0: 4 h */
  uint32_t child_rekey_s;       /* 0: 1 h */
  uint32_t child_life_s;        /* 0: rekey + 10 % */
  uint64_t child_rekey_bytes;   /* 0: none */
  uint64_t child_life_bytes;    /* 0: rekey + 10 % */
  uint64_t child_rekey_packets; /* 0: none */
  uint64_t child_life_packets;  /* 0: rekey + 10 % */
  uint32_t dpd_s;               /* 0: no DPD */
};

/* Initializes libcharon (its threads start with cp_charon_run): settings from `settings_file`
 * (NULL: none, all defaults) then from `settings_text` (strongswan.conf syntax; NULL: none), our
 * kernel-ipsec backend, the plugins in `plugins` (NULL: the default list), loggers at
 * `log_level` (-1..3: never 4, which logs keys) to stderr. Returns 0, or -1 with a reason in err. */
int cp_charon_start(const char* settings_file, const char* settings_text, const char* plugins, int log_level, char* err,
                    size_t err_len);
/* The plugins loaded when none are given. */
const char* cp_charon_default_plugins(void);
/* Starts charon's threads: IKE is handled from now on (peers may be added before). */
void cp_charon_run(void);
/* Stops libcharon (SAs are deleted through the backend first). */
void cp_charon_stop(void);
/* Makes every IKE_SA passive (the ha plugin's IKE_PASSIVE): charon then stops without a DELETE
 * to the peers for them, and the ha plugin syncs no delete to the pair's other node. Returns how
 * many were not passive. */
int cp_charon_make_passive(void);
/* An IKE_SA's message IDs (the next request we send, the next request we expect), by its SPIs as
 * they are on the wire. Moved between the pair's nodes after a split brain (docs/ha.md). */
struct cp_ike_mids {
  uint64_t spi_i, spi_r;
  uint32_t initiating, responding;
  bool busy;
};
/* Asks `check` before charon sends each IKE message of an IKEv2 IKE_SA but IKE_SA_INIT, with the
 * message IDs the IKE_SA is at once the peer has it (a request: initiating = its ID + 1; a
 * response: responding = its ID + 1; the other as the IKE_SA has it; `busy` unused) and the
 * inbound SPIs (host order) of its ESP CHILD_SAs (all of them, oldest first, as charon keeps them);
 * not CP_SEND_OK: the message is dropped (a request is retransmitted by charon, a response asked
 * again by the peer's retransmit, and checked again). Any thread; NULL: none (all sent). */
enum { CP_SEND_OK = 0, CP_SEND_UNRECORDED = 1, CP_SEND_UNCONFIRMED = 2 };
/* `bytes`, `len`: the message as charon encoded it (header to the end, no non-ESP marker), request
 * or response; NULL for a fragmented one. A request's are recorded with it for the node that
 * speaks after this one to send again; a response's are written with a node's answer without the
 * lease, for the holder to send again (docs/ha.md, item 6). */
void cp_charon_send_check(int (*check)(const struct cp_ike_mids* mids, const uint32_t* children, int n_children,
                                       bool request, const uint8_t* bytes, size_t len));
/* A request's recorded bytes (above) are what a node that speaks after this one sends again, as
 * they are (docs/ha.md, item 6, "An exchange in flight when the lease changes
 * hands"): the last request the previous speaker recorded for an IKE_SA, until a response of
 * the IKE_SA's with its message ID or a later one comes, a request of ours with a later ID leaves,
 * the IKE_SA is passive or resends_stop is called, or for 30 s (given up, said). Not through the
 * check, and not charon's exchange: the response is ignored by charon (its initiating ID is
 * raised past it). Returns how many were queued; pending: how many wait for their response and
 * were queued less than 2 s ago (the node does not speak meanwhile). */
struct cp_ike_request {
  uint64_t spi_i, spi_r;
  const uint8_t* bytes;
  size_t len;
};
int cp_charon_resend_recorded(const struct cp_ike_request* requests, int n);
int cp_charon_resends_pending(void);
/* The node no longer speaks by the lease: those not answered are not sent again (another node may
 * speak by now, and the peer past them would only ignore them). */
void cp_charon_resends_stop(void);
/* Fills up to `max` IKE_SAs' message IDs; returns how many. */
int cp_charon_ike_mids(struct cp_ike_mids* out, int max);
/* Raises each listed IKE_SA's message IDs to at least the given ones (never lowers them).
 * An exchange of ours in flight none of whose packets left this node (withheld by the check
 * above) is started again under the raised initiating ID (its tasks requeued, initiated now or
 * when the hold ends); if only the responding ID is raised, the peer still expects that request:
 * it goes as built (now or when the hold ends) and the responding ID is raised after its answer
 * (hold.c's medix_hold_resend). One of which a packet left is left for later (libcharon would
 * send that request again under its message ID, and its IV generator refuses the reuse): its
 * `busy` is set, the others' cleared. Returns how many IKE_SAs were raised now. */
int cp_charon_raise_mids(struct cp_ike_mids* mids, int n);
/* Raises each listed IKE_SA's responding ID to at least the given one (the other node answered
 * the peer's requests without the witness's lease), by a job that waits while an exchange of ours
 * is in flight (a reset then would drop its packets). With `response` (the other node's packet
 * answering request responding - 1; NULL: none), kept once raised and sent for the peer's
 * retransmit of that request, which charon itself has no response to (hold.c). Returns how many
 * were queued. */
struct cp_ike_answer {
  struct cp_ike_mids mids;
  const uint8_t* response;
  size_t response_len;
};
int cp_charon_raise_responding(const struct cp_ike_answer* answers, int n);
/* A CHILD_SA of an IKE_SA by its inbound ESP SPI (host order; no key): what the loser of a split
 * reports of its own at the heal (docs/ha.md, item 6, "A CHILD_SA the previous speaker changed"). */
struct cp_ike_child {
  uint64_t spi_i, spi_r;
  uint32_t spi;
};
/* Fills up to `max` ESP CHILD_SAs of the IKEv2 IKE_SAs here; returns how many. */
int cp_charon_children(struct cp_ike_child* out, int max);
/* The other node's CHILD_SAs (reported at a heal, or read with the witness's lease): each that
 * its IKE_SA here (established) does not hold is deleted at the peer by an INFORMATIONAL DELETE of
 * ours (leftover.c), when the hold ends (the message IDs raised by then and the node the
 * speaker), or at once without one. */
void cp_charon_delete_leftovers(const struct cp_ike_child* c, int n);
/* Destroys every passive IKE_SA (and its CHILD_SAs) without a word to the peers or the pair's
 * other node: before a resync that sends them all again. Returns how many. */
int cp_charon_drop_passive(void);
/* Marks every active or passive IKE_SA as having just received something, so that it sends no
 * DPD for its DPD delay from now (nor at once when made active): a node without a standby peer
 * initiates no liveness checks. */
void cp_charon_hold_dpd(void);
/* Holds (true) or lets go (false) the IKE requests charon would start on its own, other than
 * DPD (cp_charon_hold_dpd): CHILD_SA expiries (cp_charon_expire: lifetimes, medix-dp's events,
 * an operator's rekey), IKE_SA rekeys, reauthentications and lifetime deletes, MOBIKE roams.
 * Deferred, not dropped: they run when let go (on a passive IKE_SA charon refuses them). Set by
 * a node of a pair with a witness while it is active without a standby peer or the witness's
 * lease (docs/ha.md). Returns how many CHILD_SA expiries were let go. */
int cp_charon_hold(bool hold);
/* The exchanges held now: IKE_SA rekeys, deletes and MOBIKE roams waiting, CHILD_SA expiries queued. */
int cp_charon_held(void);
/* Adds or replaces a peer (its config and PSK or certificates); with dry_run, only checks that
 * it would be accepted (proposals, selectors, certificate files). 0, or -1 with a reason. */
int cp_charon_add_peer(const struct cp_peer* peer, bool dry_run, char* err, size_t err_len);
/* Replaces a loaded peer's config whose lifetimes alone changed (ike_rekey_s, child_*), keeping
 * its IKE_SAs and CHILD_SAs (docs/cp.md, "Lifetimes changed in place"): each IKE_SA takes the
 * new config, its rekey brought forward to the new rekey time from its establishment if that is
 * sooner (at once if past); every CHILD_SA made from now has the new CHILD_SA lifetimes (the
 * present ones' timers are medix-cp's, the C++ side). Returns how many IKE_SAs took it, or -1
 * with a reason (not loaded: replace it as a changed peer). */
int cp_charon_update_lifetimes(const struct cp_peer* peer, char* err, size_t err_len);
/* Forgets a peer's config and PSK (terminate its IKE_SAs first). 0, or -1 if unknown. */
int cp_charon_remove_peer(const char* name);
/* Starts IKE with a peer (asynchronous). 0, or -1 if unknown. */
int cp_charon_initiate(const char* name);
/* Tells charon an SA reached a soft or hard lifetime (time, bytes or packets): it rekeys
 * (soft) or deletes (hard) the CHILD_SA. `dst` is the SA's destination address. */
void cp_charon_expire(uint32_t spi, const char* dst, bool hard);
/* An IKE_SA and its CHILD_SAs as medixctl shows them (strings valid during the callback). */
struct cp_child_info {
  uint32_t unique_id;
  const char* name;
  const char* state;
  uint32_t spi_in, spi_out;
  const char* proposal;
  const char* local_ts; /* comma-separated */
  const char* remote_ts;
  uint64_t bytes_in, packets_in, bytes_out, packets_out; /* medix-dp's, through query_sa */
  int64_t installed_s;                                   /* seconds since installed */
  int64_t rekey_in_s;                                    /* seconds until the rekey; -1: none */
};
struct cp_ike_info {
  const char* peer; /* the peer's name; "" before a config is selected */
  uint32_t unique_id;
  const char* state;
  const char* local; /* address[port] */
  const char* remote;
  const char* local_id;
  const char* remote_id;
  bool initiator;
  const char* proposal;
  int64_t established_s; /* -1: not yet */
  int64_t rekey_in_s;    /* -1: none */
  size_t n_children;
  const struct cp_child_info* children;
};
typedef void (*cp_ike_cb)(void* ctx, const struct cp_ike_info* info);
/* Calls `cb` for every IKE_SA (each checked out meanwhile: do not call into charon from it). */
void cp_charon_list_ike_sas(cp_ike_cb cb, void* ctx);
/* Deletes a peer's IKE_SAs (with `wait`, returns once they are gone, at most 5 s each) / rekeys
 * its CHILD_SAs / its IKE_SAs (asynchronously); returns how many. */
int cp_charon_terminate(const char* peer, bool wait);
int cp_charon_rekey(const char* peer);
int cp_charon_rekey_ike(const char* peer);

/* Why IKE failed: charon's alert in words, and the log line of that IKE_SA before it. */
struct cp_error {
  int64_t time;     /* seconds since the epoch */
  const char* peer; /* "" if no peer config was selected yet: match by `remote` */
  const char* remote;
  const char* what;
  const char* reason;
};
typedef void (*cp_error_cb)(void* ctx, const struct cp_error* error);
/* The last errors (at most 64), oldest first. */
void cp_charon_list_errors(cp_error_cb cb, void* ctx);

/* What Prometheus reads (controlplane/metrics.cpp): IKE and CHILD_SA events since the start,
 * counted by a bus listener, and each IKE_SA's peer, state and installed CHILD_SAs. */
struct cp_ike_events {
  uint64_t ike_up, ike_down, ike_rekey;       /* IKE_SAs established, gone after being up, rekeyed */
  uint64_t child_up, child_down, child_rekey; /* CHILD_SAs installed, deleted, rekeyed (a new one in) */
  uint64_t alerts;                            /* errors medixctl peers lists (charon's alerts) */
};
void cp_charon_events(struct cp_ike_events* out);
typedef void (*cp_ike_state_cb)(void* ctx, const char* peer, const char* state, uint32_t children_installed);
/* Calls `cb` for every IKE_SA ("" peer before a config is selected); as cp_charon_list_ike_sas
 * but asks medix-dp nothing. */
void cp_charon_list_ike_states(cp_ike_state_cb cb, void* ctx);

/* Checks that the structures we share with libcharon have the layout the library was built
 * with (see config.h); cp_charon_start runs it first. 0, or -1 with the first mismatch in err. */
int cp_charon_abi_check(char* err, size_t err_len);

/* ---- C -> C++ ----------------------------------------------------------------------------- */

/* Values as medix.dataplane.v1.Cipher / Integrity. */
enum cp_cipher { CP_AES_GCM_128 = 1, CP_AES_GCM_256 = 2, CP_AES_CBC_128 = 3, CP_AES_CBC_256 = 4 };
enum cp_integrity { CP_INTEGRITY_NONE = 0, CP_HMAC_SHA256_128 = 1, CP_HMAC_SHA1_96 = 2 };

/* Identifies an SA as the kernel does: SPI and destination (plus, here, its source). */
struct cp_sa_id {
  uint32_t spi;
  const char* src;
  const char* dst;
};

struct cp_sa {
  struct cp_sa_id id;
  uint16_t src_port; /* with encap: the UDP ports (4500, or what a NAT made of them) */
  uint16_t dst_port;
  bool encap;
  bool inbound;
  uint32_t reqid;
  int cipher; /* enum cp_cipher */
  const uint8_t* cipher_key;
  size_t cipher_key_len;
  int integrity; /* enum cp_integrity */
  const uint8_t* integrity_key;
  size_t integrity_key_len;
  bool esn;
  uint32_t replay_window;
  /* Lifetimes as charon gives them (jitter applied); 0: none. Time is relative to now. */
  uint64_t soft_s, hard_s;
  uint64_t soft_bytes, hard_bytes;
  uint64_t soft_packets, hard_packets;
  /* Negotiated by the pair's other node and synced here by the ha plugin (its CHILD_ADD), not by
   * this node's charon: that node may have sent on it (docs/ha.md, "An SA the peer negotiated"). */
  bool from_peer;
};

enum cp_policy_dir { CP_POLICY_IN = 0, CP_POLICY_OUT = 1, CP_POLICY_FWD = 2 };

struct cp_policy {
  int dir;         /* enum cp_policy_dir */
  const char* key; /* selectors, direction, mark, if_id as text: equal keys are one policy */
  /* The selectors as prefixes ("" if one is not a single prefix) and the SA's endpoints. */
  const char* src_ts;
  const char* dst_ts;
  const char* src;
  const char* dst;
};

/* Each returns 0 on success, or -1 with a reason in err (logged by the caller). */
int cp_dp_get_spi(const char* src, const char* dst, uint32_t* spi, char* err, size_t err_len);
int cp_dp_add_sa(const struct cp_sa* sa, char* err, size_t err_len);
/* The SA's endpoints moved (MOBIKE, NAT port float). */
int cp_dp_update_sa(const struct cp_sa_id* id, const char* new_src, const char* new_dst, uint16_t new_src_port,
                    uint16_t new_dst_port, bool new_encap, char* err, size_t err_len);
/* Counters from medix-dp; last_used_ns is CLOCK_REALTIME, 0 if never used. */
int cp_dp_query_sa(const struct cp_sa_id* id, uint64_t* bytes, uint64_t* packets, uint64_t* last_used_ns, char* err,
                   size_t err_len);
int cp_dp_del_sa(const struct cp_sa_id* id, char* err, size_t err_len);
int cp_dp_add_policy(const struct cp_policy* policy, char* err, size_t err_len);
int cp_dp_del_policy(const struct cp_policy* policy, char* err, size_t err_len);
/* Every SA and policy we installed is to go (charon's flush). */
int cp_dp_flush(char* err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
