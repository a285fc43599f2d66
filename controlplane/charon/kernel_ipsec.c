/* medix-cp's kernel-ipsec backend for libcharon: instead of the kernel's XFRM, every SA and
 * policy charon installs becomes a call into the C++ side (cp_dp_* in glue.h), which turns it
 * into medix-dp transactions. This file only translates strongSwan's types into the plain ones
 * of glue.h; it keeps no state. SPIs are in network order in charon's interface and in host
 * order in glue.h (as in medix-dp's API).
 *
 * Not done by charon itself, so done by the C++ side: time lifetimes (timers raising
 * cp_charon_expire) and byte/packet lifetimes (medix-dp's WatchSaEvents). */
#include <arpa/inet.h>
#include <stdio.h>
#include <time.h>

#include <daemon.h>
#include <kernel/kernel_ipsec.h>

#include "glue.h"
#include "kernel_ipsec.h"

#define ERR_LEN 256
#define ADDR_LEN 64

static void host_str(host_t* host, char* buf, size_t len) { snprintf(buf, len, "%H", host); }

/* "a.b.c.d/len" if the selector is exactly one prefix (any protocol and port), else "". */
static void ts_prefix(traffic_selector_t* ts, char* buf, size_t len) {
  host_t* net = NULL;
  uint8_t mask = 0;
  buf[0] = '\0';
  if (ts->to_subnet(ts, &net, &mask) && ts->get_protocol(ts) == 0) snprintf(buf, len, "%H/%u", net, mask);
  DESTROY_IF(net);
}

METHOD(kernel_ipsec_t, get_features, kernel_feature_t, kernel_ipsec_t* this) { return 0; }

METHOD(kernel_ipsec_t, get_spi, status_t, kernel_ipsec_t* this, host_t* src, host_t* dst, uint8_t protocol,
       uint32_t* spi) {
  char s[ADDR_LEN], d[ADDR_LEN], err[ERR_LEN];
  uint32_t value;
  if (protocol != IPPROTO_ESP) return NOT_SUPPORTED;
  host_str(src, s, sizeof(s));
  host_str(dst, d, sizeof(d));
  if (cp_dp_get_spi(s, d, &value, err, sizeof(err)) != 0) {
    DBG1(DBG_KNL, "medix: get_spi failed: %s", err);
    return FAILED;
  }
  *spi = htonl(value);
  return SUCCESS;
}

METHOD(kernel_ipsec_t, get_cpi, status_t, kernel_ipsec_t* this, host_t* src, host_t* dst, uint16_t* cpi) {
  return NOT_SUPPORTED; /* no IPComp */
}

/* Fills a cp_sa_id; the buffers hold its strings. */
static void sa_id(kernel_ipsec_sa_id_t* id, struct cp_sa_id* out, char* src, char* dst) {
  host_str(id->src, src, ADDR_LEN);
  host_str(id->dst, dst, ADDR_LEN);
  out->spi = ntohl(id->spi);
  out->src = src;
  out->dst = dst;
}

static bool map_cipher(uint16_t alg, size_t key_len, int* cipher) {
  if (alg == ENCR_AES_GCM_ICV16 && key_len == 16 + 4)
    *cipher = CP_AES_GCM_128;
  else if (alg == ENCR_AES_GCM_ICV16 && key_len == 32 + 4)
    *cipher = CP_AES_GCM_256;
  else if (alg == ENCR_AES_CBC && key_len == 16)
    *cipher = CP_AES_CBC_128;
  else if (alg == ENCR_AES_CBC && key_len == 32)
    *cipher = CP_AES_CBC_256;
  else
    return FALSE;
  return TRUE;
}

static bool map_integrity(uint16_t alg, int* integrity) {
  switch (alg) {
    case AUTH_UNDEFINED: *integrity = CP_INTEGRITY_NONE; return TRUE;
    case AUTH_HMAC_SHA2_256_128: *integrity = CP_HMAC_SHA256_128; return TRUE;
    case AUTH_HMAC_SHA1_96: *integrity = CP_HMAC_SHA1_96; return TRUE;
    default: return FALSE;
  }
}

/* Whether the CHILD_SA being installed comes from the pair's other node: the ha plugin installs a
 * synced CHILD_SA (ha_dispatcher.c, process_child_add) on the IKE_SA it checked out, without a
 * task; charon installs one it negotiates only inside the CHILD_SA task of an exchange under way
 * (child_create.c, also within a CHILD_SA rekey; IKEv1's quick_mode.c), in the IKE_SA's active
 * queue (we initiated) or passive one (we respond). A passive IKE_SA negotiates nothing. Read in
 * the installing thread, which holds the IKE_SA (charon's bus names it). */
static bool from_peer(void) {
  ike_sa_t* ike_sa = charon->bus->get_sa(charon->bus);
  if (!ike_sa) return FALSE; /* not an IKE_SA's CHILD_SA: as before */
  if (ike_sa->get_state(ike_sa) == IKE_PASSIVE) return TRUE;
  task_queue_t queues[] = {TASK_QUEUE_ACTIVE, TASK_QUEUE_PASSIVE};
  bool negotiating = FALSE;
  for (size_t i = 0; !negotiating && i < countof(queues); i++) {
    task_t* task;
    enumerator_t* e = ike_sa->create_task_enumerator(ike_sa, queues[i]);
    while (!negotiating && e->enumerate(e, &task)) {
      task_type_t type = task->get_type(task);
      negotiating = type == TASK_CHILD_CREATE || type == TASK_CHILD_REKEY || type == TASK_QUICK_MODE;
    }
    e->destroy(e);
  }
  return !negotiating;
}

METHOD(kernel_ipsec_t, add_sa, status_t, kernel_ipsec_t* this, kernel_ipsec_sa_id_t* id, kernel_ipsec_add_sa_t* data) {
  char src[ADDR_LEN], dst[ADDR_LEN], err[ERR_LEN];
  struct cp_sa sa = {0};

  if (id->proto != IPPROTO_ESP || data->mode != MODE_TUNNEL || data->ipcomp != IPCOMP_NONE) {
    DBG1(DBG_KNL, "medix: only ESP in tunnel mode without IPComp is supported (got %N)", ipsec_mode_names, data->mode);
    return NOT_SUPPORTED;
  }
  if (!map_cipher(data->enc_alg, data->enc_key.len, &sa.cipher) || !map_integrity(data->int_alg, &sa.integrity)) {
    DBG1(DBG_KNL, "medix: medix-dp has no %N (%zu-byte key) with %N", encryption_algorithm_names, data->enc_alg,
         data->enc_key.len, integrity_algorithm_names, data->int_alg);
    return NOT_SUPPORTED;
  }
  sa_id(id, &sa.id, src, dst);
  sa.src_port = id->src->get_port(id->src);
  sa.dst_port = id->dst->get_port(id->dst);
  sa.encap = data->encap;
  sa.inbound = data->inbound;
  sa.reqid = data->reqid;
  sa.cipher_key = data->enc_key.ptr;
  sa.cipher_key_len = data->enc_key.len;
  sa.integrity_key = data->int_key.ptr;
  sa.integrity_key_len = data->int_key.len;
  sa.esn = data->esn;
  sa.replay_window = data->replay_window;
  sa.from_peer = from_peer();
  if (data->lifetime) {
    sa.soft_s = data->lifetime->time.rekey;
    sa.hard_s = data->lifetime->time.life;
    sa.soft_bytes = data->lifetime->bytes.rekey;
    sa.hard_bytes = data->lifetime->bytes.life;
    sa.soft_packets = data->lifetime->packets.rekey;
    sa.hard_packets = data->lifetime->packets.life;
  }
  if (cp_dp_add_sa(&sa, err, sizeof(err)) != 0) {
    DBG1(DBG_KNL, "medix: adding SA %.8x failed: %s", sa.id.spi, err);
    return FAILED;
  }
  DBG2(DBG_KNL, "medix: added %s SA %.8x %H -> %H%s", sa.inbound ? "inbound" : "outbound", sa.id.spi, id->src, id->dst,
       sa.from_peer ? " (from the pair's other node)" : "");
  return SUCCESS;
}

METHOD(kernel_ipsec_t, update_sa, status_t, kernel_ipsec_t* this, kernel_ipsec_sa_id_t* id,
       kernel_ipsec_update_sa_t* data) {
  char src[ADDR_LEN], dst[ADDR_LEN], nsrc[ADDR_LEN], ndst[ADDR_LEN], err[ERR_LEN];
  struct cp_sa_id sid;
  sa_id(id, &sid, src, dst);
  host_str(data->new_src, nsrc, sizeof(nsrc));
  host_str(data->new_dst, ndst, sizeof(ndst));
  if (cp_dp_update_sa(&sid, nsrc, ndst, data->new_src->get_port(data->new_src), data->new_dst->get_port(data->new_dst),
                      data->new_encap, err, sizeof(err)) != 0) {
    DBG1(DBG_KNL, "medix: updating SA %.8x failed: %s", sid.spi, err);
    return FAILED;
  }
  return SUCCESS;
}

METHOD(kernel_ipsec_t, query_sa, status_t, kernel_ipsec_t* this, kernel_ipsec_sa_id_t* id,
       kernel_ipsec_query_sa_t* data, uint64_t* bytes, uint64_t* packets, time_t* time) {
  char src[ADDR_LEN], dst[ADDR_LEN], err[ERR_LEN];
  struct cp_sa_id sid;
  uint64_t b = 0, p = 0, last_ns = 0;
  sa_id(id, &sid, src, dst);
  if (cp_dp_query_sa(&sid, &b, &p, &last_ns, err, sizeof(err)) != 0) {
    DBG1(DBG_KNL, "medix: querying SA %.8x failed: %s", sid.spi, err);
    return FAILED;
  }
  if (bytes) *bytes = b;
  if (packets) *packets = p;
  if (time) {
    /* charon wants the last use on its monotonic clock; medix-dp gives the wall clock. */
    *time = 0;
    if (last_ns) {
      struct timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
      time_t ago = now_ns > last_ns ? (time_t)((now_ns - last_ns) / 1000000000ull) : 0;
      *time = time_monotonic(NULL) - ago;
    }
  }
  return SUCCESS;
}

METHOD(kernel_ipsec_t, del_sa, status_t, kernel_ipsec_t* this, kernel_ipsec_sa_id_t* id, kernel_ipsec_del_sa_t* data) {
  char src[ADDR_LEN], dst[ADDR_LEN], err[ERR_LEN];
  struct cp_sa_id sid;
  sa_id(id, &sid, src, dst);
  if (cp_dp_del_sa(&sid, err, sizeof(err)) != 0) {
    DBG1(DBG_KNL, "medix: deleting SA %.8x failed: %s", sid.spi, err);
    return NOT_FOUND;
  }
  return SUCCESS;
}

METHOD(kernel_ipsec_t, flush_sas, status_t, kernel_ipsec_t* this) {
  char err[ERR_LEN];
  return cp_dp_flush(err, sizeof(err)) == 0 ? SUCCESS : FAILED;
}

/* Policies: only IPsec ones of tunnels matter to medix-dp (the outbound one becomes a route to
 * the tunnel); bypass and drop policies (shunts) are accepted and ignored. */
static status_t manage_policy(kernel_ipsec_policy_id_t* id, kernel_ipsec_manage_policy_t* data, bool add) {
  char key[512], src_ts[ADDR_LEN], dst_ts[ADDR_LEN], src[ADDR_LEN], dst[ADDR_LEN], err[ERR_LEN];
  struct cp_policy policy;

  if (data->type != POLICY_IPSEC) return SUCCESS;
  snprintf(key, sizeof(key), "%R === %R %N mark %u/%u if_id %u", id->src_ts, id->dst_ts, policy_dir_names, id->dir,
           id->mark.value, id->mark.mask, id->if_id);
  ts_prefix(id->src_ts, src_ts, sizeof(src_ts));
  ts_prefix(id->dst_ts, dst_ts, sizeof(dst_ts));
  host_str(data->src, src, sizeof(src));
  host_str(data->dst, dst, sizeof(dst));
  policy = (struct cp_policy){
      .dir = id->dir == POLICY_OUT  ? CP_POLICY_OUT
             : id->dir == POLICY_IN ? CP_POLICY_IN
                                    : CP_POLICY_FWD,
      .key = key,
      .src_ts = src_ts,
      .dst_ts = dst_ts,
      .src = src,
      .dst = dst,
  };
  if ((add ? cp_dp_add_policy : cp_dp_del_policy)(&policy, err, sizeof(err)) != 0) {
    DBG1(DBG_KNL, "medix: %s policy %s failed: %s", add ? "adding" : "deleting", key, err);
    return add ? FAILED : NOT_FOUND;
  }
  return SUCCESS;
}

METHOD(kernel_ipsec_t, add_policy, status_t, kernel_ipsec_t* this, kernel_ipsec_policy_id_t* id,
       kernel_ipsec_manage_policy_t* data) {
  return manage_policy(id, data, TRUE);
}

METHOD(kernel_ipsec_t, del_policy, status_t, kernel_ipsec_t* this, kernel_ipsec_policy_id_t* id,
       kernel_ipsec_manage_policy_t* data) {
  return manage_policy(id, data, FALSE);
}

METHOD(kernel_ipsec_t, query_policy, status_t, kernel_ipsec_t* this, kernel_ipsec_policy_id_t* id,
       kernel_ipsec_query_policy_t* data, time_t* use_time) {
  return NOT_SUPPORTED; /* the SAs' last use (query_sa) says it */
}

METHOD(kernel_ipsec_t, flush_policies, status_t, kernel_ipsec_t* this) { return SUCCESS; /* with flush_sas */ }

/* IKE sockets need no exemption: medix-dp punts UDP 500, and 4500 with the non-ESP marker, to
 * the exception TAP whatever the SAs. */
METHOD(kernel_ipsec_t, bypass_socket, bool, kernel_ipsec_t* this, int fd, int family) { return TRUE; }

METHOD(kernel_ipsec_t, enable_udp_decap, bool, kernel_ipsec_t* this, int fd, int family, uint16_t port) { return TRUE; }

METHOD(kernel_ipsec_t, destroy, void, kernel_ipsec_t* this) { free(this); }

kernel_ipsec_t* medix_kernel_ipsec_create(void) {
  kernel_ipsec_t* this;
  INIT(this, .get_features = _get_features, .get_spi = _get_spi, .get_cpi = _get_cpi, .add_sa = _add_sa,
       .update_sa = _update_sa, .query_sa = _query_sa, .del_sa = _del_sa, .flush_sas = _flush_sas,
       .add_policy = _add_policy, .query_policy = _query_policy, .del_policy = _del_policy,
       .flush_policies = _flush_policies, .bypass_socket = _bypass_socket, .enable_udp_decap = _enable_udp_decap,
       .destroy = _destroy, );
  return this;
}
