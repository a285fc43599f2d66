/* The other node's CHILD_SAs after a split (docs/ha.md, item 6, "A CHILD_SA the previous speaker
 * changed"): a CHILD_SA the loser of a heal (or the previous holder of the witness's lease: its
 * records carry the SPIs) made or rekeyed while it spoke is at the gateway, but not here, and libcharon sends no DELETE for a CHILD_SA it does not hold (child_delete.c's
 * build_i finds none and sends nothing). So the node that speaks now sends the DELETE itself, by
 * a task of its own: an INFORMATIONAL request with a DELETE payload (protocol ESP) of the SPIs the
 * loser reported (its inbound ones, which is what the gateway looks the CHILD_SA up by), under
 * this node's message IDs, once the hold ends (they are raised to the loser's by then). SPIs only:
 * no key crosses the link for this. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <daemon.h>
#include <encoding/payloads/delete_payload.h>
#include <processing/jobs/initiate_tasks_job.h>

#include "glue.h"
#include "hold.h"

typedef struct {
  task_t public;
  ike_sa_t* ike_sa;
  int n;
  uint32_t spis[]; /* network order, as child_sa_t's */
} leftover_task_t;

/* Whether the IKE_SA here holds a CHILD_SA with this SPI (inbound or outbound): then it is not
 * another node's leftover, and charon deletes it the usual way if it must. */
static bool held_here(ike_sa_t* ike_sa, uint32_t spi) {
  return ike_sa->get_child_sa(ike_sa, PROTO_ESP, spi, TRUE) || ike_sa->get_child_sa(ike_sa, PROTO_ESP, spi, FALSE);
}

static status_t leftover_build(task_t* task, message_t* message) {
  leftover_task_t* this = (leftover_task_t*)task;
  delete_payload_t* payload = NULL;
  for (int i = 0; i < this->n; i++) {
    if (held_here(this->ike_sa, this->spis[i])) continue;
    if (!payload) payload = delete_payload_create(PLV2_DELETE, PROTO_ESP);
    payload->add_spi(payload, this->spis[i]);
    DBG1(DBG_IKE,
         "medix: deleting CHILD_SA ESP SPI %.8x of IKE_SA %s[%u] at the peer: the other node made it while it spoke, "
         "it is not held here",
         ntohl(this->spis[i]), this->ike_sa->get_name(this->ike_sa), this->ike_sa->get_unique_id(this->ike_sa));
  }
  if (!payload) { /* all held here by now: no exchange (the task manager goes on to the next) */
    message->set_exchange_type(message, EXCHANGE_TYPE_UNDEFINED);
    return SUCCESS;
  }
  message->add_payload(message, (payload_t*)payload);
  return NEED_MORE;
}

/* The peer's answer: its DELETE of the same CHILD_SAs (its inbound SPIs), nothing to do here. */
static status_t leftover_process(task_t* task, message_t* message) {
  leftover_task_t* this = (leftover_task_t*)task;
  int n = 0;
  enumerator_t* e = message->create_payload_enumerator(message);
  payload_t* p;
  while (e->enumerate(e, &p))
    if (p->get_type(p) == PLV2_DELETE) n++;
  e->destroy(e);
  DBG1(DBG_IKE,
       "medix: the peer answered our DELETE of the other node's CHILD_SA(s) of IKE_SA %s[%u] (%d DELETE payload(s))",
       this->ike_sa->get_name(this->ike_sa), this->ike_sa->get_unique_id(this->ike_sa), n);
  return SUCCESS;
}

/* As child_delete's: the task manager picks it for an INFORMATIONAL exchange; no collision
 * handling applies (that is for an active CHILD_REKEY or IKE_REKEY). */
static task_type_t leftover_type(task_t* task) {
  (void)task;
  return TASK_CHILD_DELETE;
}

static void leftover_migrate(task_t* task, ike_sa_t* ike_sa) { ((leftover_task_t*)task)->ike_sa = ike_sa; }

static void leftover_destroy(task_t* task) { free(task); }

static task_t* leftover_task_create(ike_sa_t* ike_sa, const uint32_t* spis, int n) {
  leftover_task_t* this = calloc(1, sizeof(*this) + sizeof(uint32_t) * (size_t)n);
  this->public = (task_t){.build = leftover_build,
                          .process = leftover_process,
                          .get_type = leftover_type,
                          .migrate = leftover_migrate,
                          .destroy = leftover_destroy};
  this->ike_sa = ike_sa;
  this->n = n;
  memcpy(this->spis, spis, sizeof(uint32_t) * (size_t)n);
  return &this->public;
}

int cp_charon_children(struct cp_ike_child* out, int max) {
  int n = 0;
  if (!charon || !charon->ike_sa_manager) return 0; /* not started */
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (n < max && e->enumerate(e, &ike_sa)) {
    if (ike_sa->get_version(ike_sa) != IKEV2 || ike_sa->get_state(ike_sa) == IKE_DESTROYING) continue;
    ike_sa_id_t* id = ike_sa->get_id(ike_sa);
    enumerator_t* children = ike_sa->create_child_sa_enumerator(ike_sa);
    child_sa_t* child;
    while (n < max && children->enumerate(children, &child)) {
      if (child->get_protocol(child) != PROTO_ESP) continue;
      out[n++] = (struct cp_ike_child){.spi_i = id->get_initiator_spi(id),
                                       .spi_r = id->get_responder_spi(id),
                                       .spi = ntohl(child->get_spi(child, TRUE))};
    }
    children->destroy(children);
  }
  e->destroy(e);
  return n;
}

struct leftovers {
  int n;
  struct cp_ike_child c[];
};

/* Queues a DELETE on each established IKE_SA for the listed CHILD_SAs it does not hold. */
static void delete_leftovers(void* arg) {
  struct leftovers* l = arg;
  linked_list_t* ids = linked_list_create();
  uint32_t* spis = calloc((size_t)l->n + 1, sizeof(uint32_t));
  enumerator_t* e = charon->ike_sa_manager->create_enumerator(charon->ike_sa_manager, TRUE);
  ike_sa_t* ike_sa;
  while (e->enumerate(e, &ike_sa)) {
    ike_sa_id_t* id = ike_sa->get_id(ike_sa);
    /* A passive copy speaks for nothing (the node that is active deletes them). */
    if (ike_sa->get_version(ike_sa) != IKEV2 || ike_sa->get_state(ike_sa) != IKE_ESTABLISHED) continue;
    int n = 0;
    for (int i = 0; i < l->n; i++)
      if (l->c[i].spi_i == id->get_initiator_spi(id) && l->c[i].spi_r == id->get_responder_spi(id) &&
          !held_here(ike_sa, htonl(l->c[i].spi)))
        spis[n++] = htonl(l->c[i].spi);
    if (!n) continue;
    ike_sa->queue_task(ike_sa, leftover_task_create(ike_sa, spis, n));
    ids->insert_last(ids, id->clone(id));
  }
  e->destroy(e);
  ike_sa_id_t* id;
  while (ids->remove_first(ids, (void**)&id) == SUCCESS) {
    lib->processor->queue_job(lib->processor, (job_t*)initiate_tasks_job_create(id));
    id->destroy(id);
  }
  ids->destroy(ids);
  free(spis);
  free(l);
}

void cp_charon_delete_leftovers(const struct cp_ike_child* c, int n) {
  if (n <= 0) return;
  struct leftovers* l = malloc(sizeof(*l) + sizeof(*c) * (size_t)n);
  l->n = n;
  memcpy(l->c, c, sizeof(*c) * (size_t)n);
  if (!medix_hold_defer(delete_leftovers, l)) delete_leftovers(l);
}
