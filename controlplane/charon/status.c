/* What medixctl shows of IKE and does to it: the IKE_SAs and CHILD_SAs of charon, terminate and
 * rekey, and the last errors of each peer (charon's alerts, with the log line that explains
 * each: "tried 1 shared key ... but MAC mismatched" says more than "peer authentication
 * failed"). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <daemon.h>
#include <processing/jobs/rekey_ike_sa_job.h>
#include <threading/mutex.h>

#include "glue.h"
#include "status.h"

#define LINE_LEN 256
#define RECENT_SAS 32  /* IKE_SAs whose last lines are kept */
#define RECENT_LINES 8 /* lines kept per IKE_SA */
#define ERRORS 64      /* errors kept in all */

/* The last informative log lines of an IKE_SA, to explain its alerts. */
typedef struct {
  uint32_t ike_sa;
  int count;
  char lines[RECENT_LINES][LINE_LEN];
} recent_t;

typedef struct {
  int64_t time;
  char peer[64], remote[64], what[96], reason[LINE_LEN];
} peer_error_t;

static struct {
  logger_t logger;
  listener_t listener;
  mutex_t* mutex; /* all below */
  int next_recent;
  int next_error, error_count;
  struct cp_ike_events events; /* __atomic_* only, not under the mutex */
} status;
/* Apart from `status` and each other: GCC's -Wrestrict suspects copies within one object. */
static recent_t recent[RECENT_SAS];
static peer_error_t errors[ERRORS];

/* With the mutex held. */
static recent_t* recent_of(uint32_t ike_sa, bool create) {
  for (int i = 0; i < RECENT_SAS; i++)
    if (recent[i].ike_sa == ike_sa) return &recent[i];
  if (!create) return NULL;
  recent_t* r = &recent[status.next_recent];
  status.next_recent = (status.next_recent + 1) % RECENT_SAS;
  memset(r, 0, sizeof(*r));
  r->ike_sa = ike_sa;
  return r;
}

METHOD(logger_t, log_, void, logger_t* this, debug_t group, level_t level, int thread, ike_sa_t* ike_sa,
       const char* message) {
  if (!ike_sa) return;
  status.mutex->lock(status.mutex);
  recent_t* r = recent_of(ike_sa->get_unique_id(ike_sa), TRUE);
  snprintf(r->lines[r->count % RECENT_LINES], LINE_LEN, "%s", message);
  r->count++;
  status.mutex->unlock(status.mutex);
}

/* Only what explains failures: IKE, configuration, CHILD_SA and kernel (our backend's refusals)
 * at level 1; not the packets. */
METHOD(logger_t, get_level, level_t, logger_t* this, debug_t group) {
  switch (group) {
    case DBG_IKE:
    case DBG_CFG:
    case DBG_CHD:
    case DBG_KNL: return LEVEL_CTRL;
    default: return LEVEL_SILENT;
  }
}

static const char* alert_text(alert_t alert) {
  switch (alert) {
    case ALERT_PEER_AUTH_FAILED: return "the peer's authentication failed";
    case ALERT_LOCAL_AUTH_FAILED: return "the peer refused our authentication";
    case ALERT_PROPOSAL_MISMATCH_IKE: return "IKE proposals do not match";
    case ALERT_PROPOSAL_MISMATCH_CHILD: return "ESP proposals do not match";
    case ALERT_TS_MISMATCH: return "traffic selectors do not match";
    case ALERT_PEER_INIT_UNREACHABLE: return "the peer does not answer";
    case ALERT_RETRANSMIT_SEND_TIMEOUT: return "the peer stopped answering";
    case ALERT_HALF_OPEN_TIMEOUT: return "IKE_SA left half open";
    case ALERT_INSTALL_CHILD_SA_FAILED: return "medix-dp refused the SA";
    case ALERT_INSTALL_CHILD_POLICY_FAILED: return "medix-dp refused the route";
    case ALERT_AUTHORIZATION_FAILED: return "authorization failed";
    case ALERT_CERT_EXPIRED: return "the peer's certificate is expired or not yet valid";
    case ALERT_CERT_REVOKED: return "the peer's certificate is revoked";
    case ALERT_CERT_VALIDATION_FAILED: return "the peer's certificate could not be validated";
    case ALERT_CERT_NO_ISSUER: return "the peer's certificate has no known issuer";
    case ALERT_CERT_UNTRUSTED_ROOT: return "the peer's certificate has an untrusted root";
    case ALERT_CERT_EXCEEDED_PATH_LEN: return "the peer's certificate path is too long";
    case ALERT_CERT_POLICY_VIOLATION: return "the peer's certificate violates a policy";
    default: return NULL;
  }
}

/* The reason: the newest line that reads like a failure ("... MAC mismatched", "subject
 * certificate invalid ..."), else the last two lines (a proposal mismatch is alerted right after
 * "received proposals: ..." and "configured proposals: ..."). */
static void explain(recent_t* r, char* out, size_t len) {
  static const char* words[] = {"fail",  "mismatch", "unacceptable", "invalid", "no ",     "not ",  "expired",
                                "refus", "unable",   "unknown",      "error",   "timeout", "reject"};
  int n = min(r->count, RECENT_LINES);
  for (int i = 1; i <= n; i++) {
    const char* line = r->lines[(r->count - i) % RECENT_LINES];
    for (size_t w = 0; w < countof(words); w++) {
      if (strcasestr(line, words[w])) {
        snprintf(out, len, "%s", line);
        return;
      }
    }
  }
  if (n >= 2)
    snprintf(out, len, "%s; %s", r->lines[(r->count - 2) % RECENT_LINES], r->lines[(r->count - 1) % RECENT_LINES]);
  else if (n == 1)
    snprintf(out, len, "%s", r->lines[(r->count - 1) % RECENT_LINES]);
}

/* Events for Prometheus: counted on the bus's threads, read by the metrics thread. */
static void count(uint64_t* counter) { __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

METHOD(listener_t, ike_updown, bool, listener_t* this, ike_sa_t* ike_sa, bool up) {
  count(up ? &status.events.ike_up : &status.events.ike_down);
  return TRUE;
}

METHOD(listener_t, ike_rekey, bool, listener_t* this, ike_sa_t* old, ike_sa_t* new) {
  count(&status.events.ike_rekey);
  return TRUE;
}

/* A rekey installs the new CHILD_SA and deletes the old one without child_updown. */
METHOD(listener_t, child_updown, bool, listener_t* this, ike_sa_t* ike_sa, child_sa_t* child_sa, bool up) {
  count(up ? &status.events.child_up : &status.events.child_down);
  return TRUE;
}

METHOD(listener_t, child_rekey, bool, listener_t* this, ike_sa_t* ike_sa, child_sa_t* old, child_sa_t* new) {
  count(&status.events.child_rekey);
  return TRUE;
}

void cp_charon_events(struct cp_ike_events* out) {
  out->ike_up = __atomic_load_n(&status.events.ike_up, __ATOMIC_RELAXED);
  out->ike_down = __atomic_load_n(&status.events.ike_down, __ATOMIC_RELAXED);
  out->ike_rekey = __atomic_load_n(&status.events.ike_rekey, __ATOMIC_RELAXED);
  out->child_up = __atomic_load_n(&status.events.child_up, __ATOMIC_RELAXED);
  out->child_down = __atomic_load_n(&status.events.child_down, __ATOMIC_RELAXED);
  out->child_rekey = __atomic_load_n(&status.events.child_rekey, __ATOMIC_RELAXED);
  out->alerts = __atomic_load_n(&status.events.alerts, __ATOMIC_RELAXED);
}

METHOD(listener_t, alert, bool, listener_t* this, ike_sa_t* ike_sa, alert_t alert, va_list args) {
  const char* what = alert_text(alert);
  if (!what || !ike_sa) return TRUE;
  count(&status.events.alerts);
  peer_cfg_t* cfg = ike_sa->get_peer_cfg(ike_sa);
  status.mutex->lock(status.mutex);
  peer_error_t* e = &errors[status.next_error];
  status.next_error = (status.next_error + 1) % ERRORS;
  if (status.error_count < ERRORS) status.error_count++;
  memset(e, 0, sizeof(*e));
  e->time = time(NULL);
  snprintf(e->peer, sizeof(e->peer), "%s", cfg ? cfg->get_name(cfg) : "");
  snprintf(e->remote, sizeof(e->remote), "%H", ike_sa->get_other_host(ike_sa));
  snprintf(e->what, sizeof(e->what), "%s", what);
  recent_t* r = recent_of(ike_sa->get_unique_id(ike_sa), FALSE);
  if (r) explain(r, e->reason, sizeof(e->reason));
  status.mutex->unlock(status.mutex);
  return TRUE;
}

void medix_status_start(void) {
  status.logger = (logger_t){.log = _log_, .get_level = _get_level};
  status.listener = (listener_t){.alert = _alert,
                                 .ike_updown = _ike_updown,
                                 .ike_rekey = _ike_rekey,
                                 .child_updown = _child_updown,
                                 .child_rekey = _child_rekey};
  status.mutex = mutex_create(MUTEX_TYPE_DEFAULT);
  charon->bus->add_logger(charon->bus, &status.logger);
  charon->bus->add_listener(charon->bus, &status.listener);
}

void medix_status_stop(void) {
  charon->bus->remove_listener(charon->bus, &status.listener);
  charon->bus->remove_logger(charon->bus, &status.logger);
  status.mutex->destroy(status.mutex);
}

void cp_charon_list_errors(cp_error_cb cb, void* ctx) {
  status.mutex->lock(status.mutex);
  int first = (status.next_error - status.error_count + ERRORS) % ERRORS;
  for (int i = 0; i < status.error_count; i++) {
    peer_error_t* e = &errors[(first + i) % ERRORS];
    struct cp_error out = {e->time, e->peer, e->remote, e->what, e->reason};
    cb(ctx, &out);
  }
  status.mutex->unlock(status.mutex);
}

/* Seconds from now until a monotonic time (negative: in the past); -1 if `at` is 0. */
static int64_t until(time_t at, time_t now) { return at ? (int64_t)(at - now) : -1; }

static void ts_list(child_sa_t* child, bool local, char* buf, size_t len) {
  enumerator_t* e = child->create_ts_enumerator(child, local);
  traffic_selector_t* ts;
  size_t used = 0;
  buf[0] = '\0';
  while (e->enumerate(e, &ts) && used < len) used += snprintf(buf + used, len - used, "%s%R", used ? "," : "", ts);
  e->destroy(e);
}

/* Strings of one CHILD_SA, alive for the callback. */
typedef struct {
  char state[32], proposal[128], local_ts[256], remote_ts[256];
} child_text_t;

void cp_charon_list_ike_sas(cp_ike_cb cb, void* ctx) {
  enumerator_t* e = charon->controller->create_ike_sa_enumerator(charon->controller, TRUE);
  ike_sa_t* ike_sa;
  time_t now = time_monotonic(NULL);
  while (e->enumerate(e, &ike_sa)) {
    char state[32], local[80], remote[80], local_id[256], remote_id[256], proposal[160];
    peer_cfg_t* cfg = ike_sa->get_peer_cfg(ike_sa);
    proposal_t* p = ike_sa->get_proposal(ike_sa);
    snprintf(state, sizeof(state), "%N", ike_sa_state_names, ike_sa->get_state(ike_sa));
    snprintf(local, sizeof(local), "%#H", ike_sa->get_my_host(ike_sa));
    snprintf(remote, sizeof(remote), "%#H", ike_sa->get_other_host(ike_sa));
    snprintf(local_id, sizeof(local_id), "%Y", ike_sa->get_my_id(ike_sa));
    snprintf(remote_id, sizeof(remote_id), "%Y", ike_sa->get_other_id(ike_sa));
    proposal[0] = '\0';
    if (p) snprintf(proposal, sizeof(proposal), "%P", p);

    /* Children: counted, then filled (their strings in a parallel array). */
    int n = 0;
    enumerator_t* ce = ike_sa->create_child_sa_enumerator(ike_sa);
    child_sa_t* child;
    while (ce->enumerate(ce, &child)) n++;
    ce->destroy(ce);
    struct cp_child_info* children = calloc(n ? n : 1, sizeof(*children));
    child_text_t* text = calloc(n ? n : 1, sizeof(*text));
    int i = 0;
    ce = ike_sa->create_child_sa_enumerator(ike_sa);
    while (i < n && ce->enumerate(ce, &child)) {
      struct cp_child_info* c = &children[i];
      child_text_t* t = &text[i];
      proposal_t* cp = child->get_proposal(child);
      time_t used;
      snprintf(t->state, sizeof(t->state), "%N", child_sa_state_names, child->get_state(child));
      t->proposal[0] = '\0';
      if (cp) snprintf(t->proposal, sizeof(t->proposal), "%P", cp);
      ts_list(child, TRUE, t->local_ts, sizeof(t->local_ts));
      ts_list(child, FALSE, t->remote_ts, sizeof(t->remote_ts));
      c->unique_id = child->get_unique_id(child);
      c->name = child->get_name(child);
      c->state = t->state;
      c->spi_in = ntohl(child->get_spi(child, TRUE));
      c->spi_out = ntohl(child->get_spi(child, FALSE));
      c->proposal = t->proposal;
      c->local_ts = t->local_ts;
      c->remote_ts = t->remote_ts;
      /* Through our backend's query_sa: medix-dp's counters. */
      child->get_usestats(child, TRUE, &used, &c->bytes_in, &c->packets_in);
      child->get_usestats(child, FALSE, &used, &c->bytes_out, &c->packets_out);
      c->installed_s = now - child->get_installtime(child);
      c->rekey_in_s = until(child->get_lifetime(child, FALSE), now);
      i++;
    }
    ce->destroy(ce);

    uint32_t established = ike_sa->get_statistic(ike_sa, STAT_ESTABLISHED);
    struct cp_ike_info info = {
        .peer = cfg ? cfg->get_name(cfg) : "",
        .unique_id = ike_sa->get_unique_id(ike_sa),
        .state = state,
        .local = local,
        .remote = remote,
        .local_id = local_id,
        .remote_id = remote_id,
        .initiator = ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR),
        .proposal = proposal,
        .established_s = established ? (int64_t)(now - established) : -1,
        .rekey_in_s = until(ike_sa->get_statistic(ike_sa, STAT_REKEY), now),
        .n_children = (size_t)i,
        .children = children,
    };
    cb(ctx, &info);
    free(children);
    free(text);
  }
  e->destroy(e);
}

void cp_charon_list_ike_states(cp_ike_state_cb cb, void* ctx) {
  enumerator_t* e = charon->controller->create_ike_sa_enumerator(charon->controller, TRUE);
  ike_sa_t* ike_sa;
  while (e->enumerate(e, &ike_sa)) {
    char state[32];
    peer_cfg_t* cfg = ike_sa->get_peer_cfg(ike_sa);
    snprintf(state, sizeof(state), "%N", ike_sa_state_names, ike_sa->get_state(ike_sa));
    uint32_t installed = 0;
    enumerator_t* ce = ike_sa->create_child_sa_enumerator(ike_sa);
    child_sa_t* child;
    while (ce->enumerate(ce, &child))
      if (child->get_state(child) == CHILD_INSTALLED) installed++;
    ce->destroy(ce);
    cb(ctx, cfg ? cfg->get_name(cfg) : "", state, installed);
  }
  e->destroy(e);
}

/* The unique ids of a peer's IKE_SAs, and the outbound SPI and destination of their installed
 * CHILD_SAs (collected first: acting on an IKE_SA needs it checked in). */
typedef struct {
  uint32_t ids[64];
  int n_ids;
  struct {
    uint32_t spi;
    char dst[64];
  } children[64];
  int n_children;
} peer_sas_t;

static void collect(const char* peer, peer_sas_t* out) {
  enumerator_t* e = charon->controller->create_ike_sa_enumerator(charon->controller, TRUE);
  ike_sa_t* ike_sa;
  memset(out, 0, sizeof(*out));
  while (e->enumerate(e, &ike_sa)) {
    peer_cfg_t* cfg = ike_sa->get_peer_cfg(ike_sa);
    if (!cfg || !streq(cfg->get_name(cfg), peer) || out->n_ids == countof(out->ids)) continue;
    out->ids[out->n_ids++] = ike_sa->get_unique_id(ike_sa);
    enumerator_t* ce = ike_sa->create_child_sa_enumerator(ike_sa);
    child_sa_t* child;
    while (ce->enumerate(ce, &child)) {
      if (child->get_state(child) != CHILD_INSTALLED || out->n_children == countof(out->children)) continue;
      out->children[out->n_children].spi = ntohl(child->get_spi(child, FALSE));
      snprintf(out->children[out->n_children].dst, sizeof(out->children[0].dst), "%H", ike_sa->get_other_host(ike_sa));
      out->n_children++;
    }
    ce->destroy(ce);
  }
  e->destroy(e);
}

/* A callback makes terminate_ike wait for the IKE_SA to be gone. */
static bool quiet_cb(void* param, debug_t group, level_t level, ike_sa_t* ike_sa, const char* message) { return TRUE; }

int cp_charon_terminate(const char* peer, bool wait) {
  peer_sas_t sas;
  collect(peer, &sas);
  for (int i = 0; i < sas.n_ids; i++)
    charon->controller->terminate_ike(charon->controller, sas.ids[i], FALSE, wait ? quiet_cb : NULL, NULL,
                                      wait ? 5000 : 0);
  return sas.n_ids;
}

int cp_charon_rekey(const char* peer) {
  peer_sas_t sas;
  collect(peer, &sas);
  /* As a soft expire of the outbound SA: charon rekeys its CHILD_SA. */
  for (int i = 0; i < sas.n_children; i++) cp_charon_expire(sas.children[i].spi, sas.children[i].dst, false);
  return sas.n_children;
}

int cp_charon_rekey_ike(const char* peer) {
  peer_sas_t sas;
  collect(peer, &sas);
  int n = 0;
  /* The job charon schedules at the IKE lifetime, queued now: it passes the processor as that one
   * does (so the speaker hold, hold.c, holds it the same way). */
  for (int i = 0; i < sas.n_ids; i++) {
    ike_sa_t* ike_sa = charon->ike_sa_manager->checkout_by_id(charon->ike_sa_manager, sas.ids[i]);
    if (!ike_sa) continue;
    ike_sa_id_t* id = ike_sa->get_id(ike_sa)->clone(ike_sa->get_id(ike_sa));
    charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
    lib->processor->queue_job(lib->processor, (job_t*)rekey_ike_sa_job_create(id, FALSE));
    id->destroy(id);
    n++;
  }
  return n;
}
