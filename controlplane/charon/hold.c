/* The speaker hold: a node of a pair without a standby peer and without the witness's lease
 * sends no IKE request of its own (docs/ha.md, "The witness"), so its requests never collide with
 * the other node's under one message ID. DPD is held by marking the IKE_SAs as having just
 * received something (cp_charon_hold_dpd); what else charon starts on its own is deferred here,
 * not dropped, and runs when the hold ends:
 *  - CHILD_SA expiries (time lifetimes from medix-cp's timers, byte and packet ones and the HA
 *    fence from medix-dp, an operator's rekey): all come through cp_charon_expire, queued here;
 *  - IKE_SA rekeys and reauthentications, the IKE_SA's hard lifetime (its delete) and MOBIKE
 *    roams: charon's own jobs, caught on their way to the processor and put back every 200 ms.
 *    A held delete of an IKE_SA whose rekey was held too runs after that rekey, and then only if
 *    the IKE_SA is still there (the rekey failed), as charon would have rekeyed it in time.
 * And every IKE message charon sends (but IKE_SA_INIT) is shown to medix-cp first, with the
 * message IDs it leaves its IKE_SA at (cp_charon_send_check): it waits there until the pair's
 * standby acknowledged the ha plugin's sync before it (not sent if it never does), and during a
 * split the lease's holder records them with the witness before they go, so that a node obtaining
 * the lease after it speaks with the message IDs the gateway expects. The sender also notes, per IKE_SA, the message
 * ID of the last request of which a packet left (medix_hold_request_left): an exchange in flight
 * none of whose packets left may be started again under a raised message ID
 * (cp_charon_raise_mids), one that left may not; one whose responding ID alone is raised is sent
 * as built, and that ID raised after its answer (medix_hold_resend). */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <collections/hashtable.h>
#include <daemon.h>
#include <processing/jobs/delete_ike_sa_job.h>
#include <processing/jobs/initiate_tasks_job.h>
#include <processing/jobs/rekey_ike_sa_job.h>
#include <processing/jobs/retransmit_job.h>
#include <processing/jobs/roam_job.h>

#include "glue.h"
#include "hold.h"

static bool held;     /* read with __atomic by the job wrapper */
static int held_jobs; /* jobs waiting now (__atomic): counted once said, until they run or go */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
struct expiry {
  uint32_t spi;
  char dst[64];
  bool soft, hard;
};
static struct expiry* expiries; /* under lock */
static int n_expiries, cap_expiries;
static linked_list_t* requeued; /* ike_sa_id_t*, under lock: their tasks initiated when the hold ends */
struct deferred {
  void (*run)(void*);
  void* arg;
};
static linked_list_t* deferred; /* struct deferred*, under lock: run when the hold ends */

/* unique id -> 1 + the message ID of the last request of that IKE_SA of which a packet left this
 * node (IDs only). Forgotten when the IKE_SA goes. */
static hashtable_t* left;
/* unique id -> 1 + the message ID of an unsent request sent as built after a raise of the
 * responding ID alone (medix_hold_resend): once each. Under left_lock, forgotten with the IKE_SA. */
static hashtable_t* resent;
static pthread_mutex_t left_lock = PTHREAD_MUTEX_INITIALIZER;
struct resend {
  ike_sa_id_t* id;
  uint32_t mid;
};
static linked_list_t* resends; /* struct resend*, under lock: sent when the hold ends */
/* unique id -> struct resend*: a request none of whose packets was let out (the check refused
 * it), under left_lock. Sent when the hold ends rather than at charon's next retransmit, which
 * backs off (4, 7.2, 13 s...): the gateway's own retransmits would otherwise overtake it. */
static hashtable_t* withheld;
/* struct recorded_resend*, under left_lock: the previous speaker's requests sent again (below). */
static linked_list_t* recorded_resends;
static void resend_superseded(ike_sa_t* ike_sa, uint32_t mid);
/* the bus's listener: IKE_SAs gone (forget_ike_sa), inbound messages (message_in) */
static listener_t forget;
/* unique id -> struct answered*: the other node's response to the peer's request `mid`, kept when
 * the responding ID was raised past it to that node's answer (medix_hold_raise_responding), under
 * left_lock. charon has no response of its own to that request (the raise reset its task
 * manager): the peer's retransmit of it gets this one (resend_answered). Gone with the IKE_SA, or
 * once its responding ID moves on. */
struct answered {
  uint32_t mid;
  chunk_t packet;
};
static hashtable_t* answered_responses;

static void free_answered(struct answered* a) {
  if (!a) return;
  chunk_free(&a->packet);
  free(a);
}

static void (*queue_job)(processor_t* this, job_t* job);
static void (*sender_send)(sender_t* this, packet_t* packet);
/* read and set with __atomic */
static int (*send_check)(const struct cp_ike_mids* mids, const uint32_t* children, int n_children, bool request,
                         const uint8_t* bytes, size_t len);
/* The execute methods of the jobs that are held: learnt from one of each made at start. */
enum { KIND_REKEY, KIND_DELETE, KIND_ROAM };
static job_requeue_t (*held_kinds[3])(job_t*);
/* rekey_ike_sa_job and delete_ike_sa_job as strongSwan 5.9 lays them out: the job, then the
 * IKE_SA's ID. Checked at start (medix_hold_start); without it, held deletes are not ordered. */
struct ike_sa_job {
  job_t job;
  ike_sa_id_t* id;
};
static bool ordered;

typedef struct {
  job_t public;
  job_t* inner;
  int kind;
  ike_sa_id_t* id; /* the inner job's (rekey, delete), with `ordered` */
  bool said, waited;
} held_job_t;
static linked_list_t* held_rekeys; /* held_job_t* (rekeys said, not yet run), under lock */

/* A delete let go waits while a rekey of its IKE_SA is held or under way: charon rekeys before
 * the hard lifetime, and a rekey that succeeds deletes the old IKE_SA itself (ike_rekey.c). Only
 * when the rekey failed (the IKE_SA still there, none under way) does the delete run. Queued
 * both, charon's task manager would start the delete first (task_manager_v2.c initiate). */
static bool rekey_first(held_job_t* this) {
  bool wait = false;
  pthread_mutex_lock(&lock);
  held_job_t* r;
  enumerator_t* e = held_rekeys->create_enumerator(held_rekeys);
  while (!wait && e->enumerate(e, &r)) wait = r->id->equals(r->id, this->id);
  e->destroy(e);
  pthread_mutex_unlock(&lock);
  ike_sa_t* ike_sa = wait ? NULL : charon->ike_sa_manager->checkout(charon->ike_sa_manager, this->id);
  if (ike_sa) {
    ike_sa_state_t state = ike_sa->get_state(ike_sa);
    wait = state == IKE_REKEYING || state == IKE_REKEYED || state == IKE_DELETING;
    task_queue_t queues[] = {TASK_QUEUE_ACTIVE, TASK_QUEUE_QUEUED};
    for (size_t i = 0; !wait && i < countof(queues); i++) {
      task_t* task;
      e = ike_sa->create_task_enumerator(ike_sa, queues[i]);
      while (!wait && e->enumerate(e, &task))
        wait = task->get_type(task) == TASK_IKE_REKEY || task->get_type(task) == TASK_IKE_REAUTH;
      e->destroy(e);
    }
    charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
  }
  if (wait && !this->waited)
    DBG1(DBG_IKE, "medix: held IKE_SA delete (hard lifetime) let go after the IKE_SA's rekey, if that fails");
  this->waited = this->waited || wait;
  return wait;
}

static job_requeue_t held_execute(job_t* job) {
  held_job_t* this = (held_job_t*)job;
  if (__atomic_load_n(&held, __ATOMIC_ACQUIRE)) {
    if (!this->said) {
      DBG1(DBG_IKE, "medix: %s held: no IKE request without a standby peer or the witness's lease (%s)",
           this->kind == KIND_ROAM ? "MOBIKE roam" : "IKE_SA rekey/delete",
           (const char*[]){"rekey", "delete", "roam"}[this->kind]);
      __atomic_add_fetch(&held_jobs, 1, __ATOMIC_RELAXED);
      if (this->id && this->kind == KIND_REKEY) {
        pthread_mutex_lock(&lock);
        held_rekeys->insert_last(held_rekeys, this);
        pthread_mutex_unlock(&lock);
      }
    }
    this->said = true;
    return JOB_RESCHEDULE_MS(200);
  }
  if (!this->said) return this->inner->execute(this->inner);
  if (this->id && this->kind == KIND_DELETE && rekey_first(this)) return JOB_RESCHEDULE_MS(200);
  /* A rekey leaves the list once its task is on the IKE_SA, where rekey_first sees it. */
  job_requeue_t requeue = this->inner->execute(this->inner);
  this->said = false;
  __atomic_sub_fetch(&held_jobs, 1, __ATOMIC_RELAXED);
  if (this->id && this->kind == KIND_REKEY) {
    pthread_mutex_lock(&lock);
    held_rekeys->remove(held_rekeys, this, NULL);
    pthread_mutex_unlock(&lock);
  }
  return requeue;
}

static job_priority_t held_priority(job_t* job) {
  job_t* inner = ((held_job_t*)job)->inner;
  return inner->get_priority(inner);
}

static void held_destroy(job_t* job) {
  held_job_t* this = (held_job_t*)job;
  if (this->said) {
    __atomic_sub_fetch(&held_jobs, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&lock);
    held_rekeys->remove(held_rekeys, this, NULL);
    pthread_mutex_unlock(&lock);
  }
  this->inner->destroy(this->inner);
  free(this);
}

static void queue_job_held(processor_t* processor, job_t* job) {
  for (int i = 0; i < (int)countof(held_kinds); i++) {
    if (job->execute != held_kinds[i]) continue;
    held_job_t* wrap;
    INIT(wrap, .public = {.execute = held_execute, .get_priority = held_priority, .destroy = held_destroy},
         .inner = job, .kind = i, .id = ordered && i != KIND_ROAM ? ((struct ike_sa_job*)job)->id : NULL, );
    job = &wrap->public;
    break;
  }
  queue_job(processor, job);
}

static void free_resend(struct resend* r) {
  if (!r) return;
  r->id->destroy(r->id);
  free(r);
}

static void note_withheld(ike_sa_t* ike_sa, uint32_t mid) {
  ike_sa_id_t* id = ike_sa->get_id(ike_sa);
  struct resend* r = malloc(sizeof(*r));
  *r = (struct resend){.id = id->clone(id), .mid = mid};
  pthread_mutex_lock(&left_lock);
  free_resend(withheld->put(withheld, (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa), r));
  pthread_mutex_unlock(&left_lock);
}

/* Before the sender adds the non-ESP marker: the packet is the IKE message, its header in clear. */
static void send_checked(sender_t* sender, packet_t* packet) {
  int (*check)(const struct cp_ike_mids*, const uint32_t*, int, bool, const uint8_t*, size_t) =
      __atomic_load_n(&send_check, __ATOMIC_ACQUIRE);
  ike_sa_t* ike_sa = charon->bus->get_sa(charon->bus); /* the sending thread's */
  chunk_t data = packet->get_data(packet);
  if (ike_sa && ike_sa->get_version(ike_sa) == IKEV2 && data.len >= 28 && data.ptr[17] == 0x20 &&
      data.ptr[18] != IKE_SA_INIT) {
    uint32_t mid = untoh32(data.ptr + 20);
    bool request = !(data.ptr[19] & 0x20);
    if (check) {
      ike_sa_id_t* id = ike_sa->get_id(ike_sa);
      struct cp_ike_mids m = {.spi_i = id->get_initiator_spi(id),
                              .spi_r = id->get_responder_spi(id),
                              .initiating = ike_sa->get_message_id(ike_sa, TRUE),
                              .responding = ike_sa->get_message_id(ike_sa, FALSE)};
      /* Once the gateway has this message, it expects the next ID from us (a request) or sends it. */
      if (request && m.initiating < mid + 1) m.initiating = mid + 1;
      if (!request && m.responding < mid + 1) m.responding = mid + 1;
      /* Its CHILD_SAs (inbound SPIs, no key): a node that speaks after this one deletes at the
       * gateway those it does not hold (docs/ha.md, "A CHILD_SA the previous speaker changed"). */
      int max_children = ike_sa->get_child_count(ike_sa), n_children = 0;
      uint32_t* children = malloc(sizeof(uint32_t) * (size_t)(max_children + 1));
      enumerator_t* e = ike_sa->create_child_sa_enumerator(ike_sa);
      child_sa_t* child;
      while (n_children < max_children && e->enumerate(e, &child))
        if (child->get_protocol(child) == PROTO_ESP) children[n_children++] = ntohl(child->get_spi(child, TRUE));
      e->destroy(e);
      /* The message's bytes unless an encrypted fragment (SKF, RFC 7383): a request's are recorded
       * with it, for a node that speaks after this one to send again (cp_charon_resend_recorded); a
       * response's go with an answer without the lease, for the holder to send again (docs/ha.md,
       * item 6). */
      bool whole = data.ptr[16] != PLV2_FRAGMENT;
      int sent = check(&m, children, n_children, request, whole ? data.ptr : NULL, whole ? data.len : 0);
      free(children);
      if (sent != CP_SEND_OK) {
        DBG1(DBG_IKE, "medix: IKE %s %u of IKE_SA %s[%u] not sent: %s", request ? "request" : "response", mid,
             ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa),
             sent == CP_SEND_UNRECORDED ? "its message ID not recorded with the witness"
                                        : "the pair's standby did not acknowledge its sync");
        packet->destroy(packet);
        if (request) note_withheld(ike_sa, mid);
        return;
      }
    }
    if (request) {
      pthread_mutex_lock(&left_lock);
      left->put(left, (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa), (void*)((uintptr_t)mid + 1));
      free_resend(withheld->remove(withheld, (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa)));
      if (recorded_resends) resend_superseded(ike_sa, mid);
      pthread_mutex_unlock(&left_lock);
    }
  }
  sender_send(sender, packet);
}

bool medix_hold_request_left(uint32_t unique_id, uint32_t mid) {
  pthread_mutex_lock(&left_lock);
  uintptr_t last = (uintptr_t)left->get(left, (void*)(uintptr_t)unique_id);
  pthread_mutex_unlock(&left_lock);
  return last == (uintptr_t)mid + 1;
}

METHOD(listener_t, forget_ike_sa, bool, listener_t* this, ike_sa_t* ike_sa, ike_sa_state_t state) {
  if (state == IKE_DESTROYING) {
    pthread_mutex_lock(&left_lock);
    left->remove(left, (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa));
    resent->remove(resent, (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa));
    free_resend(withheld->remove(withheld, (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa)));
    free_answered(answered_responses->remove(answered_responses, (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa)));
    pthread_mutex_unlock(&left_lock);
  }
  return TRUE;
}

/* An inbound request, before charon's task manager looks at it (message_in, the IKE_SA checked
 * out): the peer's retransmit of the request the other node answered, which charon would drop
 * (`received message ID N, expected N+1, ignored`: no response cached after the raise), gets the
 * other node's response, the same bytes the peer already accepts as the answer to it. Of a
 * fragmented request, only the first fragment, as charon (RFC 7383, 2.6.1). */
static void resend_answered(ike_sa_t* ike_sa, message_t* message) {
  if (!ike_sa) return;
  uintptr_t unique = ike_sa->get_unique_id(ike_sa);
  uint32_t mid = message->get_message_id(message);
  chunk_t data = message->get_packet_data(message);
  if (data.len >= 34 && data.ptr[16] == PLV2_FRAGMENT && untoh16(data.ptr + 32) != 1) return;
  packet_t* packet = NULL;
  pthread_mutex_lock(&left_lock);
  struct answered* a = answered_responses->get(answered_responses, (void*)unique);
  if (a && ike_sa->get_message_id(ike_sa, FALSE) != a->mid + 1) {
    /* charon answered the next request itself (its own response cached now), or was raised again */
    free_answered(answered_responses->remove(answered_responses, (void*)unique));
    a = NULL;
  }
  if (a && a->mid == mid)
    packet = packet_create_from_data(message->get_destination(message)->clone(message->get_destination(message)),
                                     message->get_source(message)->clone(message->get_source(message)),
                                     chunk_clone(a->packet));
  pthread_mutex_unlock(&left_lock);
  if (packet) {
    DBG1(DBG_IKE,
         "medix: retransmit of request %u of IKE_SA %s[%u], which the other node answered without the lease: its "
         "response sent again (%zu bytes)",
         mid, ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa), packet->get_data(packet).len);
    sender_send(charon->sender, packet); /* as charon's own retransmit: no check, the answer is written */
  }
}

static void initiate_tasks(ike_sa_id_t* id) {
  lib->processor->queue_job(lib->processor, (job_t*)initiate_tasks_job_create(id));
}

/* The responding ID raised once our request is answered (medix_hold_resend): tried every 100 ms
 * while an exchange of ours is in flight (a reset then would drop its packets), until the IKE_SA
 * goes (charon gives up on a request after its retransmits). */
typedef struct {
  job_t public;
  ike_sa_id_t* id;
  uint32_t mid, responding;
  bool answered;    /* the other node's answers (medix_hold_raise_responding), not our request's */
  chunk_t response; /* with answered: the other node's response to request responding - 1, or empty */
} raise_job_t;

static job_requeue_t raise_execute(job_t* job) {
  raise_job_t* this = (raise_job_t*)job;
  ike_sa_t* ike_sa = charon->ike_sa_manager->checkout(charon->ike_sa_manager, this->id);
  if (!ike_sa) return JOB_REQUEUE_NONE;
  uint32_t resp = ike_sa->get_message_id(ike_sa, FALSE);
  task_t* task;
  enumerator_t* tasks = ike_sa->create_task_enumerator(ike_sa, TASK_QUEUE_ACTIVE);
  bool in_flight = tasks->enumerate(tasks, &task);
  tasks->destroy(tasks);
  if (in_flight && resp < this->responding) {
    charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
    return JOB_RESCHEDULE_MS(100);
  }
  bool queued = false;
  if (resp < this->responding) {
    ike_sa->set_message_id(ike_sa, FALSE, this->responding); /* resets the task manager: none active */
    if (this->answered) {
      uintptr_t unique = ike_sa->get_unique_id(ike_sa);
      struct answered* a = NULL;
      if (this->response.len) {
        a = malloc(sizeof(*a));
        *a = (struct answered){.mid = this->responding - 1, .packet = this->response};
        this->response = chunk_empty;
      }
      pthread_mutex_lock(&left_lock);
      free_answered(a ? answered_responses->put(answered_responses, (void*)unique, a)
                      : answered_responses->remove(answered_responses, (void*)unique));
      pthread_mutex_unlock(&left_lock);
    }
    if (this->answered)
      DBG1(DBG_IKE, "medix: responding message ID of IKE_SA %s[%u] raised to the other node's answers: %u[%u]",
           ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa), this->responding, resp);
    else
      DBG1(DBG_IKE,
           "medix: responding message ID of IKE_SA %s[%u] raised after a split: %u[%u], its request %u answered",
           ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa), this->responding, resp, this->mid);
    tasks = ike_sa->create_task_enumerator(ike_sa, TASK_QUEUE_QUEUED);
    queued = tasks->enumerate(tasks, &task);
    tasks->destroy(tasks);
  }
  charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
  if (queued) medix_hold_requeued(this->id); /* nothing initiates them after a reset */
  return JOB_REQUEUE_NONE;
}

static job_priority_t raise_priority(job_t* job) {
  (void)job;
  return JOB_PRIO_MEDIUM;
}

static void raise_destroy(job_t* job) {
  raise_job_t* this = (raise_job_t*)job;
  this->id->destroy(this->id);
  chunk_free(&this->response);
  free(this);
}

static void retransmit(ike_sa_id_t* id, uint32_t mid) {
  lib->processor->queue_job(lib->processor, (job_t*)retransmit_job_create(mid, id));
}

void medix_hold_raise_responding(ike_sa_t* ike_sa, uint32_t responding, const uint8_t* response, size_t response_len) {
  ike_sa_id_t* id = ike_sa->get_id(ike_sa);
  raise_job_t* job;
  INIT(job, .public = {.execute = raise_execute, .get_priority = raise_priority, .destroy = raise_destroy},
       .id = id->clone(id), .responding = responding, .answered = true,
       .response =
           response && response_len ? chunk_clone(chunk_create((u_char*)response, response_len)) : chunk_empty, );
  lib->processor->queue_job(lib->processor, &job->public);
}

void medix_hold_resend(ike_sa_t* ike_sa, uint32_t mid, uint32_t responding) {
  ike_sa_id_t* id = ike_sa->get_id(ike_sa);
  uintptr_t unique = ike_sa->get_unique_id(ike_sa);
  raise_job_t* job;
  INIT(job, .public = {.execute = raise_execute, .get_priority = raise_priority, .destroy = raise_destroy},
       .id = id->clone(id), .mid = mid, .responding = responding, );
  lib->processor->queue_job(lib->processor, &job->public);
  pthread_mutex_lock(&left_lock);
  bool again = (uintptr_t)resent->get(resent, (void*)unique) == (uintptr_t)mid + 1;
  if (!again) resent->put(resent, (void*)unique, (void*)((uintptr_t)mid + 1));
  free_resend(withheld->remove(withheld, (void*)unique)); /* sent here, not again at the hold's end */
  pthread_mutex_unlock(&left_lock);
  if (again) return; /* one extra send of it: each retransmit counts against charon's tries */
  pthread_mutex_lock(&lock);
  bool wait = held;
  if (wait) {
    struct resend* r = malloc(sizeof(*r));
    *r = (struct resend){.id = id->clone(id), .mid = mid};
    resends->insert_last(resends, r);
  }
  pthread_mutex_unlock(&lock);
  if (!wait) retransmit(id, mid);
}

void medix_hold_requeued(ike_sa_id_t* id) {
  pthread_mutex_lock(&lock);
  bool wait = held;
  if (wait) requeued->insert_last(requeued, id->clone(id));
  pthread_mutex_unlock(&lock);
  if (!wait) initiate_tasks(id);
}

bool medix_hold_defer(void (*run)(void*), void* arg) {
  pthread_mutex_lock(&lock);
  bool wait = held;
  if (wait) {
    struct deferred* d = malloc(sizeof(*d));
    *d = (struct deferred){.run = run, .arg = arg};
    deferred->insert_last(deferred, d);
  }
  pthread_mutex_unlock(&lock);
  return wait;
}

/* The previous speaker's last recorded request, sent again as it is (cp_charon_resend_recorded):
 * the peer either had it (a retransmit: libcharon 5.9.8 answers one whose hash is the last
 * request's from its cache, task_manager_v2.c is_retransmit) or not (it takes it now); either way
 * it answers under that message ID and then expects the next one, the one this node's raised
 * IKE_SA sends. Until that response comes, for 2 s at most, the node does not speak
 * (cp_charon_resends_pending); it is sent again until a response of the IKE_SA's with that ID or
 * a later one comes, or a request of ours with a later ID leaves (once the peer may have taken
 * that, the old one would be ignored: only ever the last request is answered again). */
struct recorded_resend {
  uint64_t spi_i, spi_r;
  uint32_t mid;
  chunk_t bytes;
  int tries;
  bool done;        /* answered or superseded: out of the list, its job frees it */
  int64_t since_ms; /* monotonic */
};
enum { resend_gate_ms = 2000, resend_for_ms = 30000 };

static int64_t monotonic_ms(void) {
  timeval_t tv;
  time_monotonic(&tv);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A request of ours with a later ID than a recorded one left (under left_lock). */
static void resend_superseded(ike_sa_t* ike_sa, uint32_t mid) {
  ike_sa_id_t* id = ike_sa->get_id(ike_sa);
  struct recorded_resend* r;
  enumerator_t* e = recorded_resends->create_enumerator(recorded_resends);
  while (e->enumerate(e, &r)) {
    if (r->mid >= mid || r->spi_i != id->get_initiator_spi(id) || r->spi_r != id->get_responder_spi(id)) continue;
    r->done = true;
    recorded_resends->remove_at(recorded_resends, e);
    DBG1(DBG_IKE,
         "medix: the last lease holder's request %u not answered yet (sent again %d time(s)): no longer sent "
         "once our request %u left",
         r->mid, r->tries, mid);
  }
  e->destroy(e);
}

/* An inbound response (message_in): the previous speaker's recorded request answered. */
static void recorded_answered(message_t* message) {
  ike_sa_id_t* id = message->get_ike_sa_id(message);
  uint32_t mid = message->get_message_id(message);
  pthread_mutex_lock(&left_lock);
  struct recorded_resend* r;
  enumerator_t* e = recorded_resends->create_enumerator(recorded_resends);
  while (e->enumerate(e, &r)) {
    /* That response, or one to a later request (the peer took this one before it). */
    if (r->mid > mid || r->spi_i != id->get_initiator_spi(id) || r->spi_r != id->get_responder_spi(id)) continue;
    /* Out of the list at once (the node speaks); its job frees it. */
    r->done = true;
    recorded_resends->remove_at(recorded_resends, e);
    DBG1(DBG_IKE, "medix: the last lease holder's request %u answered by the peer (response %u; sent again %d time(s))",
         r->mid, mid, r->tries);
  }
  e->destroy(e);
  pthread_mutex_unlock(&left_lock);
}

/* Every message charon takes is shown here unparsed (plain FALSE) before its ID is checked
 * (task_manager_v2.c process_message): a response is seen though charon then ignores it, a request
 * though charon would drop it as a retransmit it has no response to. */
METHOD(listener_t, message_in, bool, listener_t* this, ike_sa_t* ike_sa, message_t* message, bool incoming,
       bool plain) {
  if (!incoming || plain) return TRUE;
  if (message->get_request(message))
    resend_answered(ike_sa, message);
  else
    recorded_answered(message);
  return TRUE;
}

typedef struct {
  job_t public;
  struct recorded_resend* r; /* in recorded_resends until this job ends */
} recorded_job_t;

/* Sent (from the IKE_SA's addresses as this node has them) at once, then after 1, 2, 4, 4... s
 * while unanswered, for 30 s at most; then the node speaks whatever. */
static job_requeue_t recorded_execute(job_t* job) {
  struct recorded_resend* r = ((recorded_job_t*)job)->r;
  pthread_mutex_lock(&left_lock);
  bool answered = r->done;
  pthread_mutex_unlock(&left_lock);
  int waited = (int)(monotonic_ms() - r->since_ms) / 1000;
  host_t *src = NULL, *dst = NULL;
  if (!answered && waited < resend_for_ms / 1000) {
    enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
    ike_sa_t* ike_sa;
    while (!src && e->enumerate(e, &ike_sa)) {
      ike_sa_id_t* id = ike_sa->get_id(ike_sa);
      /* Passive: the node is standby now (a copy of the active's, which speaks). */
      if (id->get_initiator_spi(id) != r->spi_i || id->get_responder_spi(id) != r->spi_r ||
          ike_sa->get_state(ike_sa) == IKE_PASSIVE)
        continue;
      src = ike_sa->get_my_host(ike_sa)->clone(ike_sa->get_my_host(ike_sa));
      dst = ike_sa->get_other_host(ike_sa)->clone(ike_sa->get_other_host(ike_sa));
    }
    e->destroy(e);
  }
  if (src) {
    DBG1(DBG_IKE, "medix: sending the last lease holder's request %u again as it recorded it (%zu bytes, try %d)",
         r->mid, r->bytes.len, r->tries + 1);
    sender_send(charon->sender, packet_create_from_data(src, dst, chunk_clone(r->bytes)));
    int delay = r->tries < 3 ? 1000 << r->tries : 4000;
    r->tries++;
    return JOB_RESCHEDULE_MS(delay);
  }
  pthread_mutex_lock(&left_lock);
  answered = r->done; /* it may have come meanwhile: then out of the list already */
  if (!answered) recorded_resends->remove(recorded_resends, r, NULL);
  pthread_mutex_unlock(&left_lock);
  if (!answered && waited >= resend_for_ms / 1000)
    DBG1(DBG_IKE, "medix: the last lease holder's request %u not answered in %d s: given up", r->mid, waited);
  chunk_free(&r->bytes);
  free(r);
  return JOB_REQUEUE_NONE;
}

static job_priority_t recorded_priority(job_t* job) {
  (void)job;
  return JOB_PRIO_MEDIUM;
}

static void recorded_destroy(job_t* job) { free(job); }

int cp_charon_resend_recorded(const struct cp_ike_request* requests, int n) {
  int queued = 0;
  for (int i = 0; i < n; i++) {
    if (requests[i].len < 28) continue;
    struct recorded_resend* r = malloc(sizeof(*r));
    *r = (struct recorded_resend){.spi_i = requests[i].spi_i,
                                  .spi_r = requests[i].spi_r,
                                  .mid = untoh32((void*)(uintptr_t)(requests[i].bytes + 20)),
                                  .bytes = chunk_clone(chunk_create((u_char*)requests[i].bytes, requests[i].len)),
                                  .since_ms = monotonic_ms()};
    pthread_mutex_lock(&left_lock);
    recorded_resends->insert_last(recorded_resends, r);
    pthread_mutex_unlock(&left_lock);
    recorded_job_t* job;
    INIT(job, .public = {.execute = recorded_execute, .get_priority = recorded_priority, .destroy = recorded_destroy},
         .r = r, );
    lib->processor->queue_job(lib->processor, &job->public);
    queued++;
  }
  return queued;
}

void cp_charon_resends_stop(void) {
  pthread_mutex_lock(&left_lock);
  struct recorded_resend* r;
  enumerator_t* e = recorded_resends ? recorded_resends->create_enumerator(recorded_resends) : NULL;
  while (e && e->enumerate(e, &r)) {
    r->done = true;
    recorded_resends->remove_at(recorded_resends, e);
    DBG1(DBG_IKE, "medix: the last lease holder's request %u no longer sent again: the lease is not ours now", r->mid);
  }
  DESTROY_IF(e);
  pthread_mutex_unlock(&left_lock);
}

int cp_charon_resends_pending(void) {
  pthread_mutex_lock(&left_lock);
  int n = 0;
  int64_t now = monotonic_ms();
  struct recorded_resend* r;
  enumerator_t* e = recorded_resends ? recorded_resends->create_enumerator(recorded_resends) : NULL;
  while (e && e->enumerate(e, &r)) n += now - r->since_ms < resend_gate_ms;
  DESTROY_IF(e);
  pthread_mutex_unlock(&left_lock);
  return n;
}

void cp_charon_send_check(int (*check)(const struct cp_ike_mids* mids, const uint32_t* children, int n_children,
                                       bool request, const uint8_t* bytes, size_t len)) {
  __atomic_store_n(&send_check, check, __ATOMIC_RELEASE);
}

void medix_hold_start(void) {
  ike_sa_id_t* id = ike_sa_id_create(IKEV2, 1, 0, TRUE);
  job_t* samples[] = {(job_t*)rekey_ike_sa_job_create(id, FALSE), (job_t*)delete_ike_sa_job_create(id, TRUE),
                      (job_t*)roam_job_create(TRUE)};
  ordered = true;
  for (size_t i = 0; i < countof(samples); i++) {
    held_kinds[i] = samples[i]->execute;
    if (i != KIND_ROAM) ordered = ordered && id->equals(id, ((struct ike_sa_job*)samples[i])->id);
    samples[i]->destroy(samples[i]);
  }
  id->destroy(id);
  if (!ordered) DBG1(DBG_IKE, "medix: IKE_SA jobs laid out otherwise: held deletes not ordered after held rekeys");
  held_rekeys = linked_list_create();
  /* Scheduled jobs reach the processor through queue_job too (the scheduler's thread). */
  queue_job = lib->processor->queue_job;
  lib->processor->queue_job = queue_job_held;
  left = hashtable_create(hashtable_hash_ptr, hashtable_equals_ptr, 32);
  resent = hashtable_create(hashtable_hash_ptr, hashtable_equals_ptr, 8);
  withheld = hashtable_create(hashtable_hash_ptr, hashtable_equals_ptr, 8);
  resends = linked_list_create();
  recorded_resends = linked_list_create();
  requeued = linked_list_create();
  deferred = linked_list_create();
  answered_responses = hashtable_create(hashtable_hash_ptr, hashtable_equals_ptr, 8);
  forget = (listener_t){.ike_state_change = _forget_ike_sa, .message = _message_in};
  charon->bus->add_listener(charon->bus, &forget);
  sender_send = charon->sender->send;
  charon->sender->send = send_checked;
}

bool medix_hold_expire(uint32_t spi, const char* dst, bool hard) {
  pthread_mutex_lock(&lock);
  if (!held) {
    pthread_mutex_unlock(&lock);
    return false;
  }
  int i = 0;
  while (i < n_expiries && !(expiries[i].spi == spi && strcmp(expiries[i].dst, dst) == 0)) i++;
  if (i == n_expiries) {
    if (n_expiries == cap_expiries) {
      cap_expiries = cap_expiries ? 2 * cap_expiries : 16;
      expiries = realloc(expiries, sizeof(*expiries) * cap_expiries);
    }
    expiries[i] = (struct expiry){.spi = spi};
    snprintf(expiries[i].dst, sizeof expiries[i].dst, "%s", dst);
    n_expiries++;
  }
  if (hard)
    expiries[i].hard = true;
  else
    expiries[i].soft = true;
  pthread_mutex_unlock(&lock);
  DBG1(DBG_IKE, "medix: CHILD_SA SPI %.8x %s expiry held: no IKE request without a standby peer or the witness's lease",
       spi, hard ? "hard" : "soft");
  return true;
}

/* A CHILD_SA whose soft and hard expiries were both held: rekeyed (as rekey_child_sa_job does),
 * then deleted (as delete_child_sa_job does, expired) only if it is still installed once no rekey
 * is under way: a rekey that succeeds deletes the old CHILD_SA itself (child_rekey.c). */
typedef struct {
  job_t public;
  uint32_t spi; /* network order, as the kernel's expire gives it */
  host_t* dst;
  bool rekeyed;
} child_job_t;

static bool child_rekey_busy(ike_sa_t* ike_sa, child_sa_t* child) {
  if (child->get_state(child) != CHILD_INSTALLED) return true;
  task_queue_t queues[] = {TASK_QUEUE_ACTIVE, TASK_QUEUE_QUEUED};
  bool busy = false;
  for (size_t i = 0; !busy && i < countof(queues); i++) {
    task_t* task;
    enumerator_t* e = ike_sa->create_task_enumerator(ike_sa, queues[i]);
    while (!busy && e->enumerate(e, &task)) busy = task->get_type(task) == TASK_CHILD_REKEY;
    e->destroy(e);
  }
  return busy;
}

static job_requeue_t child_execute(job_t* job) {
  child_job_t* this = (child_job_t*)job;
  if (__atomic_load_n(&held, __ATOMIC_ACQUIRE)) return JOB_RESCHEDULE_MS(200); /* held again */
  child_sa_t* child;
  ike_sa_t* ike_sa =
      charon->child_sa_manager->checkout(charon->child_sa_manager, PROTO_ESP, this->spi, this->dst, &child);
  if (!ike_sa) return JOB_REQUEUE_NONE; /* rekeyed (or deleted) */
  bool again = ike_sa->get_state(ike_sa) != IKE_PASSIVE;
  if (again && !this->rekeyed) {
    ike_sa->rekey_child_sa(ike_sa, PROTO_ESP, this->spi);
    this->rekeyed = true;
  } else if (again && !child_rekey_busy(ike_sa, child)) {
    DBG1(DBG_IKE, "medix: CHILD_SA SPI %.8x still installed after its held rekey: its held hard expiry deletes it",
         ntohl(this->spi));
    ike_sa->delete_child_sa(ike_sa, PROTO_ESP, this->spi, TRUE);
    again = false;
  }
  charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
  return again ? JOB_RESCHEDULE_MS(200) : JOB_REQUEUE_NONE;
}

static job_priority_t child_priority(job_t* job) {
  (void)job;
  return JOB_PRIO_MEDIUM;
}

static void child_destroy(job_t* job) {
  child_job_t* this = (child_job_t*)job;
  this->dst->destroy(this->dst);
  free(this);
}

static void child_rekey_first(uint32_t spi, const char* dst) {
  host_t* host = host_create_from_string((char*)dst, 0);
  if (!host) return;
  child_job_t* job;
  INIT(job, .public = {.execute = child_execute, .get_priority = child_priority, .destroy = child_destroy},
       .spi = htonl(spi), .dst = host, );
  lib->processor->queue_job(lib->processor, &job->public);
}

int cp_charon_hold(bool hold) {
  pthread_mutex_lock(&lock);
  __atomic_store_n(&held, hold, __ATOMIC_RELEASE);
  struct expiry* run = NULL;
  int n = 0;
  if (!hold && n_expiries) {
    run = expiries;
    n = n_expiries;
    expiries = NULL;
    n_expiries = cap_expiries = 0;
  }
  linked_list_t* kick = NULL;
  if (!hold && requeued->get_count(requeued)) {
    kick = requeued;
    requeued = linked_list_create();
  }
  linked_list_t* later = NULL;
  if (!hold && deferred->get_count(deferred)) {
    later = deferred;
    deferred = linked_list_create();
  }
  linked_list_t* send = NULL;
  if (!hold && resends->get_count(resends)) {
    send = resends;
    resends = linked_list_create();
  }
  pthread_mutex_unlock(&lock);
  /* Unsent requests the peer still expects (medix_hold_resend): their packets as built. */
  struct resend* r;
  while (send && send->remove_first(send, (void**)&r) == SUCCESS) {
    retransmit(r->id, r->mid);
    r->id->destroy(r->id);
    free(r);
  }
  DESTROY_IF(send);
  /* Requests the check refused (a split's first second, no lease): their packets as built, once,
   * each where its exchange is still the one in flight (charon's retransmit ignores another ID). */
  if (!hold) {
    linked_list_t* now = linked_list_create();
    pthread_mutex_lock(&left_lock);
    enumerator_t* e = withheld->create_enumerator(withheld);
    void* key;
    while (e->enumerate(e, &key, &r)) {
      withheld->remove_at(withheld, e);
      now->insert_last(now, r);
    }
    e->destroy(e);
    pthread_mutex_unlock(&left_lock);
    while (now->remove_first(now, (void**)&r) == SUCCESS) {
      retransmit(r->id, r->mid);
      free_resend(r);
    }
    now->destroy(now);
  }
  /* Exchanges started again under raised message IDs while held (cp_charon_raise_mids). */
  ike_sa_id_t* id;
  while (kick && kick->remove_first(kick, (void**)&id) == SUCCESS) {
    initiate_tasks(id);
    id->destroy(id);
  }
  DESTROY_IF(kick);
  struct deferred* d;
  while (later && later->remove_first(later, (void**)&d) == SUCCESS) {
    d->run(d->arg);
    free(d);
  }
  DESTROY_IF(later);
  /* Both held for one SA: the rekey, which replaces the SA (the old keys go with it), rather
   * than the delete, which would leave the tunnel without one; the delete after it if it fails. */
  for (int i = 0; i < n; i++) {
    if (run[i].soft && run[i].hard)
      child_rekey_first(run[i].spi, run[i].dst);
    else
      cp_charon_expire(run[i].spi, run[i].dst, run[i].hard);
  }
  free(run);
  return n;
}

int cp_charon_held(void) {
  pthread_mutex_lock(&lock);
  int n = n_expiries;
  pthread_mutex_unlock(&lock);
  return n + __atomic_load_n(&held_jobs, __ATOMIC_RELAXED);
}
