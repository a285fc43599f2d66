/* libcharon inside medix-cp: start and stop, the peers (a config backend of our own and an
 * in-memory credential set, filled from medix-cp's intent), initiate, expire, and the ABI check.
 * Everything here runs on libcharon's terms (its threads, its objects); the C++ side reaches it
 * through glue.h only. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <config/backend.h>
#include <credentials/sets/mem_cred.h>
#include <daemon.h>
#include <processing/jobs/rekey_ike_sa_job.h>
#include <threading/rwlock.h>

#include "glue.h"
#include "hold.h"
#include "kernel_ipsec.h"
#include "status.h"

/* The smallest set that does IKEv2 with PSK and X.509 (kdf: PRF_HMAC_SHA2_256 for the KDF;
 * kernel-netlink: addresses and routes of the exception TAP, its kernel-ipsec loses to ours). */
#define DEFAULT_PLUGINS "random nonce openssl kdf socket-default kernel-netlink pem pkcs1 pkcs8 x509 pubkey constraints"

const char* cp_charon_default_plugins(void) { return DEFAULT_PLUGINS; }

/* Peers as a backend_t: a list of peer_cfg_t, replaced whole per name. */
typedef struct {
  backend_t public;
  linked_list_t* peers;
  rwlock_t* lock;
} peers_backend_t;

static peers_backend_t* peers;
static mem_cred_t* creds;
static bool started;

static void err_set(char* err, size_t len, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(err, len, fmt, args);
  va_end(args);
}

static void unlock_peers(void* lock) { ((rwlock_t*)lock)->unlock((rwlock_t*)lock); }

METHOD(backend_t, create_peer_cfg_enumerator, enumerator_t*, backend_t* this, identification_t* me,
       identification_t* other) {
  peers->lock->read_lock(peers->lock);
  return enumerator_create_cleaner(peers->peers->create_enumerator(peers->peers), unlock_peers, peers->lock);
}

CALLBACK(ike_cfg_filter, bool, void* data, enumerator_t* orig, va_list args) {
  peer_cfg_t* cfg;
  ike_cfg_t** out;
  VA_ARGS_VGET(args, out);
  if (orig->enumerate(orig, &cfg)) {
    *out = cfg->get_ike_cfg(cfg);
    return TRUE;
  }
  return FALSE;
}

METHOD(backend_t, create_ike_cfg_enumerator, enumerator_t*, backend_t* this, host_t* me, host_t* other) {
  peers->lock->read_lock(peers->lock);
  return enumerator_create_filter(peers->peers->create_enumerator(peers->peers), ike_cfg_filter, peers->lock,
                                  unlock_peers);
}

/* With the lock held. */
static peer_cfg_t* find_peer(const char* name) {
  enumerator_t* e = peers->peers->create_enumerator(peers->peers);
  peer_cfg_t *cfg, *found = NULL;
  while (e->enumerate(e, &cfg)) {
    if (streq(cfg->get_name(cfg), name)) {
      found = cfg;
      break;
    }
  }
  e->destroy(e);
  return found;
}

METHOD(backend_t, get_peer_cfg_by_name, peer_cfg_t*, backend_t* this, char* name) {
  peer_cfg_t* cfg;
  peers->lock->read_lock(peers->lock);
  cfg = find_peer(name);
  if (cfg) cfg->get_ref(cfg);
  peers->lock->unlock(peers->lock);
  return cfg;
}

/* Whether a logger of the settings (filelog.NAME or syslog.FACILITY, under our namespace or
 * charon's) logs a group, or all ("default"), at level 4 or more: strongSwan's level of private
 * data, where charon dumps the PSK and every IKE and CHILD_SA key. No key or PSK may reach
 * medix-cp's log, so such settings are refused; err names the setting. */
static bool logs_keys(char* err, size_t err_len) {
  const char* prefixes[] = {lib->ns, "charon"};
  const char* kinds[] = {"filelog", "syslog"};
  for (size_t p = 0; p < countof(prefixes); p++) {
    for (size_t k = 0; k < countof(kinds); k++) {
      enumerator_t* loggers = lib->settings->create_section_enumerator(lib->settings, "%s.%s", prefixes[p], kinds[k]);
      char* logger;
      while (loggers->enumerate(loggers, &logger)) {
        enumerator_t* keys =
            lib->settings->create_key_value_enumerator(lib->settings, "%s.%s.%s", prefixes[p], kinds[k], logger);
        char *key, *value;
        bool found = false;
        while (!found && keys->enumerate(keys, &key, &value)) {
          bool level = strcmp(key, "default") == 0 || (strlen(key) == 3 && key[0] >= 'a' && key[0] <= 'z');
          if (level && value && atoi(value) >= 4) {
            err_set(err, err_len, "%s.%s.%s.%s = %s: level 4 would log keys and PSKs (at most 3)", prefixes[p],
                    kinds[k], logger, key, value);
            found = true;
          }
        }
        keys->destroy(keys);
        if (found) {
          loggers->destroy(loggers);
          return true;
        }
      }
      loggers->destroy(loggers);
    }
  }
  return false;
}

int cp_charon_start(const char* settings_file, const char* settings_text, const char* plugins, int log_level, char* err,
                    size_t err_len) {
  static plugin_feature_t features[] = {
      PLUGIN_CALLBACK(kernel_ipsec_register, medix_kernel_ipsec_create),
      PLUGIN_PROVIDE(CUSTOM, "kernel-ipsec"),
      PLUGIN_DEPENDS(RNG, RNG_WEAK),
  };

  /* Our settings, never /etc/strongswan.conf (whose load_modular would bring Debian's plugin
   * list): an empty file (library_init insists on a regular one), then the one given, under
   * the namespace "medix-cp" (which falls back to "charon"). */
  char empty[] = "/tmp/medix-cp-empty.conf.XXXXXX";
  int fd = mkstemp(empty);
  if (fd < 0) {
    err_set(err, err_len, "mkstemp: %s", strerror(errno));
    return -1;
  }
  close(fd);
  bool ok = library_init(empty, "medix-cp");
  unlink(empty);
  if (!ok) {
    library_deinit();
    err_set(err, err_len, "libstrongswan failed to initialize");
    return -1;
  }
  /* Log to stderr, a line at a time (charon's default would be stdout, block-buffered, and
   * syslog); a settings file may say otherwise. */
  lib->settings->set_int(lib->settings, "%s.filelog.stderr.default", log_level, lib->ns);
  lib->settings->set_bool(lib->settings, "%s.filelog.stderr.flush_line", TRUE, lib->ns);
  lib->settings->set_bool(lib->settings, "%s.filelog.stderr.ike_name", TRUE, lib->ns);
  lib->settings->set_str(lib->settings, "%s.filelog.stderr.time_format", "%T", lib->ns);
  lib->settings->set_bool(lib->settings, "%s.filelog.stderr.time_add_ms", TRUE, lib->ns);
  if (settings_file && !lib->settings->load_files(lib->settings, (char*)settings_file, TRUE)) {
    library_deinit();
    err_set(err, err_len, "%s: not a valid strongswan.conf", settings_file);
    return -1;
  }
  if (settings_text && !lib->settings->load_string(lib->settings, (char*)settings_text, TRUE)) {
    library_deinit();
    err_set(err, err_len, "invalid settings: %s", settings_text);
    return -1;
  }
  if (logs_keys(err, err_len)) {
    library_deinit();
    return -1;
  }
  /* Nothing of IKE touches the kernel's routing or addresses: medix-dp carries it all. */
  lib->settings->set_bool(lib->settings, "%s.install_routes", FALSE, lib->ns);
  lib->settings->set_bool(lib->settings, "%s.install_virtual_ip", FALSE, lib->ns);
  if (!libcharon_init()) {
    libcharon_deinit();
    library_deinit();
    err_set(err, err_len, "libcharon failed to initialize");
    return -1;
  }
  /* Before anything reads charon's members at offsets that a wrong config.h would shift. */
  if (cp_charon_abi_check(err, err_len) != 0) {
    libcharon_deinit();
    library_deinit();
    return -1;
  }
  charon->load_loggers(charon);

  /* Registered before initialize(): the first kernel-ipsec wins over kernel-netlink's. */
  lib->plugins->add_static_features(lib->plugins, "medix-cp", features, countof(features), TRUE, NULL, NULL);
  if (!charon->initialize(charon, (char*)(plugins ? plugins : DEFAULT_PLUGINS))) {
    libcharon_deinit();
    library_deinit();
    err_set(err, err_len, "libcharon: loading plugins failed (%s)", plugins ? plugins : DEFAULT_PLUGINS);
    return -1;
  }

  INIT(peers,
       .public =
           {
               .create_peer_cfg_enumerator = _create_peer_cfg_enumerator,
               .create_ike_cfg_enumerator = _create_ike_cfg_enumerator,
               .get_peer_cfg_by_name = _get_peer_cfg_by_name,
           },
       .peers = linked_list_create(), .lock = rwlock_create(RWLOCK_TYPE_DEFAULT), );
  charon->backends->add_backend(charon->backends, &peers->public);
  creds = mem_cred_create();
  lib->credmgr->add_set(lib->credmgr, &creds->set);

  medix_status_start();
  medix_hold_start();
  started = true;
  return 0;
}

void cp_charon_run(void) { charon->start(charon); }

int cp_charon_make_passive(void) {
  if (!started) return 0;
  int n = 0;
  /* As the ha plugin's segment drop does (ha_segments.c): a passive IKE_SA sends nothing, not
   * even its DELETE when charon stops, and the plugin syncs nothing of it to the peer. */
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (e->enumerate(e, &ike_sa)) {
    if (ike_sa->get_state(ike_sa) == IKE_PASSIVE || ike_sa->get_state(ike_sa) == IKE_DESTROYING) continue;
    ike_sa->set_state(ike_sa, IKE_PASSIVE);
    n++;
  }
  e->destroy(e);
  return n;
}

int cp_charon_ike_mids(struct cp_ike_mids* out, int max) {
  if (!started) return 0;
  int n = 0;
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (n < max && e->enumerate(e, &ike_sa)) {
    ike_sa_id_t* id = ike_sa->get_id(ike_sa);
    if (ike_sa->get_version(ike_sa) != IKEV2 || ike_sa->get_state(ike_sa) == IKE_DESTROYING) continue;
    out[n].spi_i = id->get_initiator_spi(id);
    out[n].spi_r = id->get_responder_spi(id);
    out[n].initiating = ike_sa->get_message_id(ike_sa, TRUE);
    out[n].responding = ike_sa->get_message_id(ike_sa, FALSE);
    n++;
  }
  e->destroy(e);
  return n;
}

int cp_charon_raise_mids(struct cp_ike_mids* mids, int n) {
  if (!started) return 0;
  int raised = 0;
  for (int i = 0; i < n; i++) mids[i].busy = false;
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (e->enumerate(e, &ike_sa)) {
    ike_sa_id_t* id = ike_sa->get_id(ike_sa);
    if (ike_sa->get_version(ike_sa) != IKEV2 || ike_sa->get_state(ike_sa) == IKE_DESTROYING) continue;
    for (int i = 0; i < n; i++) {
      if (mids[i].spi_i != id->get_initiator_spi(id) || mids[i].spi_r != id->get_responder_spi(id)) continue;
      uint32_t init = ike_sa->get_message_id(ike_sa, TRUE), resp = ike_sa->get_message_id(ike_sa, FALSE);
      if (mids[i].initiating <= init && mids[i].responding <= resp) break;
      enumerator_t* tasks = ike_sa->create_task_enumerator(ike_sa, TASK_QUEUE_ACTIVE);
      task_t* task;
      bool in_flight = tasks->enumerate(tasks, &task);
      tasks->destroy(tasks);
      /* An exchange of ours in flight (its request's ID is `init`) is started again by the reset
       * below, new content under the new ID. Only if no packet of it left this node (the witness's
       * check withheld it: the gateway cannot have it) and the new ID is above it (its IV, which
       * libstrongswan's generator derives from the message ID, is then a fresh one); else it is
       * left for later (the gateway may have it, and a request sent again under its message ID
       * with other content makes the IV generator refuse what follows). */
      bool unsent = in_flight && !medix_hold_request_left(ike_sa->get_unique_id(ike_sa), init);
      bool requeue = unsent && mids[i].initiating > init;
      /* Unsent, and only the responding ID raised: the peer still expects this request (its ID is
       * not passed), so it goes as charon built it, and the responding ID is raised after its
       * answer (hold.c). Not busy: the node may speak meanwhile. */
      if (unsent && !requeue) {
        DBG1(DBG_IKE,
             "medix: IKE_SA %s[%u]: its request %u never left this node and the peer still expects it: sent as built, "
             "the responding ID raised to %u after its answer",
             ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa), init, mids[i].responding);
        medix_hold_resend(ike_sa, init, mids[i].responding);
        break;
      }
      mids[i].busy = in_flight && !requeue;
      if (mids[i].busy) break;
      /* As the ha plugin applies a synced message ID (ha_dispatcher.c): set_message_id resets the
       * task manager (queued tasks start again, and an active one goes back to the queue). */
      if (mids[i].initiating > init) ike_sa->set_message_id(ike_sa, TRUE, mids[i].initiating);
      if (mids[i].responding > resp) ike_sa->set_message_id(ike_sa, FALSE, mids[i].responding);
      if (mids[i].initiating > init || mids[i].responding > resp) {
        DBG1(DBG_IKE, "medix: message IDs of IKE_SA %s[%u] raised after a split: initiating %u[%u], responding %u[%u]",
             ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa), ike_sa->get_message_id(ike_sa, TRUE), init,
             ike_sa->get_message_id(ike_sa, FALSE), resp);
        raised++;
      }
      if (requeue) {
        DBG1(DBG_IKE, "medix: IKE_SA %s[%u]: its request %u never left this node: started again as request %u",
             ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa), init, ike_sa->get_message_id(ike_sa, TRUE));
        medix_hold_requeued(id);
      }
      break;
    }
  }
  e->destroy(e);
  return raised;
}

int cp_charon_raise_responding(const struct cp_ike_answer* answers, int n) {
  if (!started) return 0;
  int queued = 0;
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (e->enumerate(e, &ike_sa)) {
    ike_sa_id_t* id = ike_sa->get_id(ike_sa);
    if (ike_sa->get_version(ike_sa) != IKEV2 || ike_sa->get_state(ike_sa) == IKE_DESTROYING) continue;
    for (int i = 0; i < n; i++)
      if (answers[i].mids.spi_i == id->get_initiator_spi(id) && answers[i].mids.spi_r == id->get_responder_spi(id)) {
        if (answers[i].mids.responding > ike_sa->get_message_id(ike_sa, FALSE)) {
          medix_hold_raise_responding(ike_sa, answers[i].mids.responding, answers[i].response, answers[i].response_len);
          queued++;
        }
        break;
      }
  }
  e->destroy(e);
  return queued;
}

int cp_charon_drop_passive(void) {
  if (!started) return 0;
  linked_list_t* ids = linked_list_create();
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (e->enumerate(e, &ike_sa))
    if (ike_sa->get_state(ike_sa) == IKE_PASSIVE) {
      ike_sa_id_t* id = ike_sa->get_id(ike_sa);
      ids->insert_last(ids, id->clone(id));
    }
  e->destroy(e);
  int n = 0;
  ike_sa_id_t* id;
  while (ids->remove_first(ids, (void**)&id) == SUCCESS) {
    ike_sa = charon->ike_sa_manager->checkout(charon->ike_sa_manager, id);
    id->destroy(id);
    if (!ike_sa) continue;
    /* Passive: the ha plugin syncs nothing of it, and destroying sends the peer nothing. */
    if (ike_sa->get_state(ike_sa) == IKE_PASSIVE) {
      charon->ike_sa_manager->checkin_and_destroy(charon->ike_sa_manager, ike_sa);
      n++;
    } else {
      charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
    }
  }
  ids->destroy(ids);
  return n;
}

void cp_charon_hold_dpd(void) {
  if (!started) return;
  uint32_t now = (uint32_t)time_monotonic(NULL);
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  /* ike_sa.c's send_dpd sends one only when nothing came in for the DPD delay (STAT_INBOUND);
   * a passive IKE_SA too: the plugin's activation checks at once (a takeover's first DPD). */
  while (e->enumerate(e, &ike_sa))
    if (ike_sa->get_state(ike_sa) == IKE_ESTABLISHED || ike_sa->get_state(ike_sa) == IKE_PASSIVE)
      ike_sa->set_statistic(ike_sa, STAT_INBOUND, now);
  e->destroy(e);
}

void cp_charon_stop(void) {
  if (!started) return;
  started = false;
  /* libcharon_deinit deletes the IKE_SAs (and so our SAs and policies, through the backend). */
  charon->backends->remove_backend(charon->backends, &peers->public);
  lib->credmgr->remove_set(lib->credmgr, &creds->set);
  medix_status_stop();
  libcharon_deinit();
  peers->peers->destroy_offset(peers->peers, offsetof(peer_cfg_t, destroy));
  peers->lock->destroy(peers->lock);
  free(peers);
  creds->destroy(creds);
  library_deinit();
}

/* Adds the proposals of a comma-separated list; FALSE on the first that does not parse. */
static bool add_proposals(const char* list, protocol_id_t proto, void (*add)(void*, proposal_t*), void* cfg, char* err,
                          size_t err_len) {
  enumerator_t* e = enumerator_create_token(list, ",", " ");
  char* token;
  bool ok = TRUE;
  int n = 0;
  while (e->enumerate(e, &token)) {
    proposal_t* p = proposal_create_from_string(proto, token);
    if (!p) {
      err_set(err, err_len, "invalid %s proposal '%s'", proto == PROTO_IKE ? "IKE" : "ESP", token);
      ok = FALSE;
      break;
    }
    add(cfg, p);
    n++;
  }
  e->destroy(e);
  if (ok && n == 0) {
    err_set(err, err_len, "no %s proposal", proto == PROTO_IKE ? "IKE" : "ESP");
    ok = FALSE;
  }
  return ok;
}

static void add_ike_proposal(void* cfg, proposal_t* p) { ((ike_cfg_t*)cfg)->add_proposal(cfg, p); }
static void add_esp_proposal(void* cfg, proposal_t* p) { ((child_cfg_t*)cfg)->add_proposal(cfg, p); }

static bool add_selectors(const char* list, child_cfg_t* child, bool local, char* err, size_t err_len) {
  enumerator_t* e = enumerator_create_token(list, ",", " ");
  char* token;
  bool ok = TRUE;
  int n = 0;
  while (e->enumerate(e, &token)) {
    traffic_selector_t* ts = traffic_selector_create_from_cidr(token, 0, 0, 65535);
    if (!ts) {
      err_set(err, err_len, "invalid %s selector '%s'", local ? "local" : "remote", token);
      ok = FALSE;
      break;
    }
    child->add_traffic_selector(child, local, ts);
    n++;
  }
  e->destroy(e);
  if (ok && n == 0) {
    err_set(err, err_len, "no %s selector", local ? "local" : "remote");
    ok = FALSE;
  }
  return ok;
}

static auth_cfg_t* psk_auth(const char* id) {
  auth_cfg_t* auth = auth_cfg_create();
  auth->add(auth, AUTH_RULE_AUTH_CLASS, AUTH_CLASS_PSK);
  auth->add(auth, AUTH_RULE_IDENTITY, identification_create_from_string((char*)id));
  return auth;
}

/* X.509: our side proves itself with `cert` (and its key, in the credential set); the peer must
 * present a certificate for `id` that `ca` issued. */
static auth_cfg_t* pubkey_auth(const char* id, certificate_t* cert, certificate_t* ca) {
  auth_cfg_t* auth = auth_cfg_create();
  auth->add(auth, AUTH_RULE_AUTH_CLASS, AUTH_CLASS_PUBKEY);
  auth->add(auth, AUTH_RULE_IDENTITY, identification_create_from_string((char*)id));
  if (cert) auth->add(auth, AUTH_RULE_SUBJECT_CERT, cert->get_ref(cert));
  if (ca) auth->add(auth, AUTH_RULE_CA_CERT, ca->get_ref(ca));
  return auth;
}

/* Loads the peer's certificate, key and CA into our credential set. FALSE with a reason. */
static bool load_x509(const struct cp_peer* p, bool dry_run, certificate_t** cert, certificate_t** ca, char* err,
                      size_t err_len) {
  private_key_t* key;
  *cert = lib->creds->create(lib->creds, CRED_CERTIFICATE, CERT_X509, BUILD_FROM_FILE, p->certificate, BUILD_END);
  if (!*cert) {
    err_set(err, err_len, "peer %s: %s is not an X.509 certificate", p->name, p->certificate);
    return FALSE;
  }
  *ca = lib->creds->create(lib->creds, CRED_CERTIFICATE, CERT_X509, BUILD_FROM_FILE, p->ca_certificate, BUILD_END);
  if (!*ca) {
    (*cert)->destroy(*cert);
    err_set(err, err_len, "peer %s: %s is not an X.509 certificate", p->name, p->ca_certificate);
    return FALSE;
  }
  key = lib->creds->create(lib->creds, CRED_PRIVATE_KEY, KEY_ANY, BUILD_FROM_FILE, p->private_key, BUILD_END);
  if (!key) {
    (*cert)->destroy(*cert);
    (*ca)->destroy(*ca);
    err_set(err, err_len, "peer %s: %s is not a private key", p->name, p->private_key);
    return FALSE;
  }
  if (dry_run) {
    key->destroy(key);
    return TRUE;
  }
  /* The set owns what it is given; we keep references for the auth rules. */
  *cert = creds->add_cert_ref(creds, FALSE, *cert);
  *ca = creds->add_cert_ref(creds, TRUE, *ca);
  creds->add_key(creds, key);
  return TRUE;
}

/* Child SA lifetimes as swanctl would make them: a hard limit 10 % above the soft one unless
 * given; charon rekeys at the soft limit less a random jitter (time: up to the gap between the
 * two, as swanctl; volume: at most 10 % of the soft limit, so that a large hard limit does not
 * make the rekey come at once). */
static lifetime_cfg_t child_lifetime(const struct cp_peer* p) {
  lifetime_cfg_t l = {0};
  l.time.rekey = p->child_rekey_s ? p->child_rekey_s : 3600;
  l.time.life = p->child_life_s ? p->child_life_s : l.time.rekey * 110 / 100;
  l.time.jitter = l.time.life - l.time.rekey;
  l.bytes.rekey = p->child_rekey_bytes;
  l.bytes.life = p->child_life_bytes ? p->child_life_bytes : l.bytes.rekey * 110 / 100;
  l.bytes.jitter = min(l.bytes.life - l.bytes.rekey, l.bytes.rekey / 10);
  l.packets.rekey = p->child_rekey_packets;
  l.packets.life = p->child_life_packets ? p->child_life_packets : l.packets.rekey * 110 / 100;
  l.packets.jitter = min(l.packets.life - l.packets.rekey, l.packets.rekey / 10);
  return l;
}

/* libcharon's child_cfg_t get_lifetime, learnt from the first child_cfg we make. */
static lifetime_cfg_t* (*cfg_lifetime)(child_cfg_t* this, bool jitter);

/* Every child_cfg we make reads its lifetimes from its peer's current config (the one loaded
 * under its name now): a CHILD_SA keeps the child_cfg it was made with, and its rekey makes the
 * next one from it (child_rekey.c), so without this a peer whose lifetimes changed in place
 * (cp_charon_update_lifetimes) would go on with the old ones. child_cfg_t has no setter. */
static lifetime_cfg_t* current_lifetime(child_cfg_t* this, bool jitter) {
  child_cfg_t *cfg = this, *child;
  peers->lock->read_lock(peers->lock);
  peer_cfg_t* peer = find_peer(this->get_name(this));
  enumerator_t* e = peer ? peer->create_child_cfg_enumerator(peer) : NULL;
  if (e && e->enumerate(e, &child)) cfg = child;
  DESTROY_IF(e);
  lifetime_cfg_t* l = cfg_lifetime(cfg, jitter);
  peers->lock->unlock(peers->lock);
  return l;
}

int cp_charon_add_peer(const struct cp_peer* p, bool dry_run, char* err, size_t err_len) {
  ike_cfg_t* ike;
  peer_cfg_t *peer, *old;
  child_cfg_t* child;
  linked_list_t* owners;
  uint32_t ike_rekey = p->ike_rekey_s ? p->ike_rekey_s : 4 * 3600;
  certificate_t *cert = NULL, *ca = NULL;
  bool psk = p->psk && *p->psk;

  ike = ike_cfg_create(&(ike_cfg_create_t){
      .version = IKEV2,
      .local = (char*)p->local_address,
      .local_port = charon->socket->get_port(charon->socket, FALSE),
      .remote = (char*)p->remote_address,
      .remote_port = IKEV2_UDP_PORT,
      .fragmentation = FRAGMENTATION_YES,
  });
  if (!add_proposals(p->ike_proposals, PROTO_IKE, add_ike_proposal, ike, err, err_len) ||
      (!psk && !load_x509(p, dry_run, &cert, &ca, err, err_len))) {
    ike->destroy(ike);
    return -1;
  }
  /* As swanctl's defaults: over_time 10 % of the rekey time, jitter at most half of it. */
  peer = peer_cfg_create((char*)p->name, ike,
                         &(peer_cfg_create_t){
                             .cert_policy = CERT_SEND_IF_ASKED,
                             .unique = UNIQUE_REPLACE,
                             .keyingtries = 1,
                             .rekey_time = ike_rekey,
                             .over_time = ike_rekey / 10,
                             .jitter_time = min(ike_rekey / 10, ike_rekey / 2),
                             .no_mobike = FALSE,
                             .dpd = p->dpd_s,
                         });
  if (psk) {
    peer->add_auth_cfg(peer, psk_auth(p->local_id), TRUE);
    peer->add_auth_cfg(peer, psk_auth(p->remote_id), FALSE);
  } else {
    peer->add_auth_cfg(peer, pubkey_auth(p->local_id, cert, NULL), TRUE);
    peer->add_auth_cfg(peer, pubkey_auth(p->remote_id, NULL, ca), FALSE);
    cert->destroy(cert);
    ca->destroy(ca);
  }

  child = child_cfg_create((char*)p->name, &(child_cfg_create_t){
                                               .mode = MODE_TUNNEL,
                                               .lifetime = child_lifetime(p),
                                               .dpd_action = ACTION_START,
                                               .close_action = ACTION_NONE,
                                           });
  if (!cfg_lifetime) cfg_lifetime = child->get_lifetime;
  child->get_lifetime = current_lifetime;
  peer->add_child_cfg(peer, child);
  if (!add_proposals(p->esp_proposals, PROTO_ESP, add_esp_proposal, child, err, err_len) ||
      !add_selectors(p->local_ts, child, TRUE, err, err_len) ||
      !add_selectors(p->remote_ts, child, FALSE, err, err_len)) {
    peer->destroy(peer);
    return -1;
  }

  if (dry_run) {
    peer->destroy(peer);
    return 0;
  }
  if (psk) {
    /* The PSK, for this pair of identities, under the peer's name (replaced with it). */
    owners = linked_list_create();
    owners->insert_last(owners, identification_create_from_string((char*)p->local_id));
    owners->insert_last(owners, identification_create_from_string((char*)p->remote_id));
    creds->add_shared_unique(creds, (char*)p->name,
                             shared_key_create(SHARED_IKE, chunk_clone(chunk_from_str((char*)p->psk))), owners);
  }

  peers->lock->write_lock(peers->lock);
  old = find_peer(p->name);
  if (old) peers->peers->remove(peers->peers, old, NULL);
  peers->peers->insert_last(peers->peers, peer);
  peers->lock->unlock(peers->lock);
  DESTROY_IF(old);
  DBG1(DBG_CFG, "medix: peer '%s' %s <-> %s loaded", p->name, p->local_address, p->remote_address);
  return 0;
}

int cp_charon_update_lifetimes(const struct cp_peer* p, char* err, size_t err_len) {
  peer_cfg_t* cfg = _get_peer_cfg_by_name(&peers->public, (char*)p->name);
  if (!cfg) {
    err_set(err, err_len, "peer %s is not loaded", p->name);
    return -1;
  }
  cfg->destroy(cfg);
  if (cp_charon_add_peer(p, false, err, err_len) != 0) return -1;
  cfg = _get_peer_cfg_by_name(&peers->public, (char*)p->name);
  int n = 0;
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (e->enumerate(e, &ike_sa)) {
    peer_cfg_t* old = ike_sa->get_peer_cfg(ike_sa);
    if (!old || !streq(old->get_name(old), p->name) || ike_sa->get_state(ike_sa) == IKE_DESTROYING) continue;
    /* Its next rekey makes the new IKE_SA with this config (ike_rekey.c); a passive one, made
     * active, schedules its rekey from it (ike_sa.c set_state). */
    ike_sa->set_peer_cfg(ike_sa, cfg);
    n++;
    if (ike_sa->get_state(ike_sa) != IKE_ESTABLISHED) continue;
    /* As charon schedules it at establishment: the rekey time (less its jitter) from then, if
     * that comes before the rekey scheduled now (a job at the old time stays, and finds the
     * IKE_SA rekeyed and gone); a time already past is now. The maximum lifetime (the delete if
     * no rekey succeeds) stays as scheduled: brought forward with the rekey, it would leave a
     * rekey due at once only a tenth of the new rekey time to succeed. */
    uint32_t t = cfg->get_rekey_time(cfg, TRUE), now = (uint32_t)time_monotonic(NULL);
    uint32_t due = ike_sa->get_statistic(ike_sa, STAT_ESTABLISHED) + t, was = ike_sa->get_statistic(ike_sa, STAT_REKEY);
    if (!t || (was && due >= was)) continue;
    ike_sa->set_statistic(ike_sa, STAT_REKEY, due);
    lib->scheduler->schedule_job(lib->scheduler, (job_t*)rekey_ike_sa_job_create(ike_sa->get_id(ike_sa), FALSE),
                                 due > now ? due - now : 0);
    DBG1(DBG_IKE, "medix: IKE_SA %s[%u]: lifetimes changed in place, rekeying in %ds (was in %ds)",
         ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa), due > now ? (int)(due - now) : 0,
         was ? (int)was - (int)now : -1);
  }
  e->destroy(e);
  cfg->destroy(cfg);
  DBG1(DBG_CFG, "medix: peer '%s': lifetimes changed in place, %d IKE_SA(s) kept", p->name, n);
  return n;
}

int cp_charon_remove_peer(const char* name) {
  peer_cfg_t* old;
  peers->lock->write_lock(peers->lock);
  old = find_peer(name);
  if (old) peers->peers->remove(peers->peers, old, NULL);
  peers->lock->unlock(peers->lock);
  creds->remove_shared_unique(creds, (char*)name);
  if (!old) return -1;
  old->destroy(old);
  DBG1(DBG_CFG, "medix: peer '%s' removed", name);
  return 0;
}

int cp_charon_initiate(const char* name) {
  peer_cfg_t* peer = _get_peer_cfg_by_name(&peers->public, (char*)name);
  enumerator_t* e;
  child_cfg_t* child = NULL;
  if (!peer) return -1;
  e = peer->create_child_cfg_enumerator(peer);
  if (e->enumerate(e, &child)) child->get_ref(child);
  e->destroy(e);
  if (!child) {
    peer->destroy(peer);
    return -1;
  }
  /* No callback: queued, returns at once; the outcome shows on the bus (and the log). */
  charon->controller->initiate(charon->controller, peer, child, NULL, NULL, 0, FALSE);
  return 0;
}

void cp_charon_expire(uint32_t spi, const char* dst, bool hard) {
  if (medix_hold_expire(spi, dst, hard)) return;
  host_t* host = host_create_from_string((char*)dst, 0);
  if (!host) return;
  charon->kernel->expire(charon->kernel, IPPROTO_ESP, htonl(spi), host, hard);
  host->destroy(host);
}

/* Is `fn` code of the library `lib_name`? */
static bool in_library(void* fn, const char* lib_name) {
  Dl_info info;
  return fn && dladdr(fn, &info) && info.dli_fname && strstr(info.dli_fname, lib_name);
}

int cp_charon_abi_check(char* err, size_t err_len) {
  /* daemon_t: its members after the ME ones are methods libcharon filled in. Read at a wrong
   * offset, they would point elsewhere (or at data). */
  struct {
    const char* name;
    void* fn;
  } methods[] = {
      {"daemon_t.initialize", (void*)charon->initialize},
      {"daemon_t.start", (void*)charon->start},
      {"daemon_t.load_loggers", (void*)charon->load_loggers},
      {"daemon_t.set_default_loggers", (void*)charon->set_default_loggers},
      {"daemon_t.set_level", (void*)charon->set_level},
      {"daemon_t.bus->alert", (void*)charon->bus->alert},
      {"daemon_t.kernel->expire", (void*)charon->kernel->expire},
      {"daemon_t.controller->initiate", (void*)charon->controller->initiate},
      {"daemon_t.backends->add_backend", (void*)charon->backends->add_backend},
  };
  for (size_t i = 0; i < countof(methods); i++) {
    if (!in_library(methods[i].fn, "libcharon.so")) {
      err_set(err, err_len, "%s does not point into libcharon: struct layouts differ (ME?)", methods[i].name);
      return -1;
    }
  }
  /* peer_cfg_create_t (ME members) and peer_cfg_t: values given are the values read back. */
  ike_cfg_t* ike = ike_cfg_create(&(ike_cfg_create_t){.version = IKEV2, .local = "0.0.0.0", .remote = "0.0.0.0"});
  peer_cfg_t* peer = peer_cfg_create("abi", ike,
                                     &(peer_cfg_create_t){
                                         .keyingtries = 7,
                                         .rekey_time = 1234,
                                         .over_time = 56,
                                         .dpd = 42,
                                     });
  bool ok = streq(peer->get_name(peer), "abi") && peer->get_keyingtries(peer) == 7 &&
            peer->get_rekey_time(peer, FALSE) == 1234 && peer->get_over_time(peer) == 56 && peer->get_dpd(peer) == 42 &&
            peer->get_ike_cfg(peer) == ike;
#ifdef ME
  ok = ok && !peer->is_mediation(peer);
#endif
  peer->destroy(peer);
  if (!ok) {
    err_set(err, err_len, "peer_cfg_t does not read back what peer_cfg_create was given: layouts differ");
    return -1;
  }
  return 0;
}
