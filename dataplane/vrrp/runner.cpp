#include "vrrp/runner.h"

#include <rte_arp.h>
#include <rte_ip.h>

#include <chrono>

#include "common/log.h"
#include "infra/worker.h"
#include "l2/l2.h"

namespace medix::dp::vrrp {
namespace {

constexpr size_t kept_transitions = 8;
constexpr uint64_t link_period_ns = 100'000'000;  // the links (own and tracked) are read every 100 ms

uint64_t realtime_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

const Instance* find(const dp::Tables& t, const std::string& name) {
  for (const auto& i : t.vrrp.instances)
    if (i.name == name) return &i;
  return nullptr;
}

const InterfaceEntry* interface_of(const dp::Tables& t, const Instance& i) {
  if (i.interface >= t.interfaces.size() || t.interfaces[i.interface].uid != i.interface_uid) return nullptr;
  return &t.interfaces[i.interface];
}

// A frame of `l3` bytes after the interface's L2 header (with its tags) from the virtual MAC;
// returns where the L3 part goes, or nullptr with nothing allocated.
rte_mbuf* frame(const Io& io, const InterfaceEntry& f, const Instance& i, const rte_ether_addr& dst, uint16_t ethertype,
                size_t l3, uint8_t** at) {
  rte_mbuf* m = io.pool ? rte_pktmbuf_alloc(io.pool) : nullptr;
  if (!m) return nullptr;
  uint8_t l2 = l2_len_of(f);
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(l2 + l3)));
  if (!p) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  write_l2(p, f, dst, ethertype);
  reinterpret_cast<rte_ether_hdr*>(p)->src_addr = virtual_mac(i.vrid);
  *at = p + l2;
  PacketMeta& pm = meta(m);
  pm = PacketMeta{};
  pm.iface_in = i.interface;
  pm.iface_out = i.interface;
  pm.out_uid = i.interface_uid;
  pm.tenant = f.tenant;
  pm.l2_len = l2;
  pm.flags = meta_local;
  pm.handoff = Handoff::transmit;
  return m;
}

bool hand_to_worker(const Io& io, rte_mbuf* m) {
  if (io.to_worker && rte_ring_mp_enqueue(io.to_worker, m) == 0) return true;
  rte_pktmbuf_free(m);
  return false;
}

}  // namespace

Params Runner::params_of(const dp::Tables& t, const Instance& i, const Entry& e) {
  Params p;
  p.vrid = i.vrid;
  p.priority = uint8_t(std::max<int>(1, int(i.priority) - int(e.lowered)));
  p.interval_cs = i.interval_cs;
  p.preempt = i.preempt;
  p.fault = e.fault;
  const InterfaceEntry* f = interface_of(t, i);
  p.primary = f && f->subnet_count ? f->subnets[0].address : 0;
  return p;
}

void Runner::sync(const dp::Tables& t, uint64_t now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Instance* i = find(t, it->first);
    if (!i || i->live != it->second.live) {
      it->second.live->master.store(false, std::memory_order_relaxed);
      it->second.live->draining.store(false, std::memory_order_relaxed);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& i : t.vrrp.instances) {
    auto [it, fresh] = entries_.try_emplace(i.name);
    Entry& e = it->second;
    if (fresh) {
      e.live = i.live;
      e.priority = i.priority;
      e.m.p = params_of(t, i, e);
      Actions a = e.m.start(now);
      e.transitions++;
      e.last.push_back({realtime_ns(), a.from, e.m.state, a.reason});
      continue;
    }
    Params p = params_of(t, i, e);
    e.priority = i.priority;
    if (p.priority != e.m.p.priority || p.interval_cs != e.m.p.interval_cs || p.preempt != e.m.p.preempt ||
        p.primary != e.m.p.primary)
      e.m.update(p, now, Reason::start);
  }
}

void Runner::receive(const dp::Tables& t, rte_ring* from_workers, uint64_t now) {
  rte_mbuf* pkts[32];
  unsigned n;
  while (from_workers && (n = rte_ring_sc_dequeue_burst(from_workers, reinterpret_cast<void**>(pkts), 32, nullptr))) {
    for (unsigned k = 0; k < n; k++) {
      rte_mbuf* m = pkts[k];
      PacketMeta& pm = meta(m);
      Advert a;
      RxError why = RxError::length;
      if (m->nb_segs == 1 && rte_pktmbuf_data_len(m) > pm.l2_len)
        why = parse(rte_pktmbuf_mtod_offset(m, const uint8_t*, pm.l2_len), rte_pktmbuf_data_len(m) - pm.l2_len, a);
      uint16_t iface = pm.iface_in;
      rte_pktmbuf_free(m);
      switch (why) {
        case RxError::none: break;
        case RxError::ttl: errors_.ttl++; continue;
        case RxError::version: errors_.version++; continue;
        case RxError::type: errors_.type++; continue;
        case RxError::length: errors_.length++; continue;
        case RxError::checksum: errors_.checksum++; continue;
      }
      if (iface < t.interfaces.size() && t.interfaces[iface].owns(a.source)) {
        errors_.own++;
        continue;
      }
      const Instance* inst = nullptr;
      for (const auto& i : t.vrrp.instances)
        if (i.interface == iface && i.vrid == a.vrid) inst = &i;
      auto e = inst ? entries_.find(inst->name) : entries_.end();
      if (e == entries_.end()) {
        errors_.unknown_vrid++;
        continue;
      }
      e->second.rx++;
      // 7.1: a list unlike ours is accepted (the priority decides) but worth a log line.
      bool same = a.count == inst->n_addresses;
      for (unsigned j = 0; same && j < a.count && j < max_addresses; j++) same = inst->has(a.addresses[j]);
      if (!same && a.priority != 0) errors_.address_list++;
      Actions act_on = e->second.m.advert(a, now);
      pending_.push_back({inst->name, act_on});
    }
  }
}

void Runner::track(const dp::Tables& t, const Io& io, uint64_t now) {
  if (now < links_at_ + link_period_ns || !io.link_up) return;
  links_at_ = now;
  auto up = [&](uint16_t iface) {
    return iface < t.interfaces.size() && t.interfaces[iface].uid && t.interfaces[iface].port < t.ports.size() &&
           io.link_up(t.ports[t.interfaces[iface].port]);
  };
  for (const auto& i : t.vrrp.instances) {
    auto it = entries_.find(i.name);
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    unsigned lowered = 0;
    // The instance's own link is tracked with weight 0 (keepalived's FAULT): an instance that
    // can neither hear nor be heard on its segment must not keep its group master there.
    bool own_down = !up(i.interface);
    bool fault = own_down;
    for (unsigned k = 0; k < i.n_tracks; k++) {
      const Track& tr = i.tracks[k];
      if (up(tr.interface)) continue;
      if (tr.weight == 0)
        fault = true;
      else
        lowered += tr.weight;
    }
    if (lowered == e.lowered && fault == e.fault && own_down == e.own_down) continue;
    bool worse = lowered > e.lowered || (fault && !e.fault);
    bool own = own_down != e.own_down;
    e.lowered = lowered;
    e.fault = fault;
    e.own_down = own_down;
    medix::common::log(medix::common::LogLevel::notice, "medix-dp: VRRP %s: %s link %s: priority %u%s", i.name.c_str(),
                       own ? "its own" : "tracked", (own ? own_down : worse) ? "down" : "up",
                       unsigned(params_of(t, i, e).priority), fault ? ", fault (forced to backup)" : "");
    pending_.push_back({i.name, e.m.update(params_of(t, i, e), now, worse ? Reason::link_down : Reason::link_up)});
  }
}

void Runner::send_advert(const dp::Tables& t, const Io& io, const Instance& i, Entry& e, uint8_t priority) {
  const InterfaceEntry* f = interface_of(t, i);
  if (!f || !e.m.p.primary) return;
  uint8_t* at;
  rte_mbuf* m = frame(io, *f, i, group_mac(), RTE_ETHER_TYPE_IPV4, advert_bytes(i.n_addresses), &at);
  if (!m) return;
  build(at, e.m.p.primary, i.vrid, priority, i.interval_cs, i.addresses.data(), i.n_addresses, ip_id_++);
  if (hand_to_worker(io, m)) e.tx++;
}

void Runner::send_garps(const dp::Tables& t, const Io& io, const Instance& i, Entry& e) {
  const InterfaceEntry* f = interface_of(t, i);
  if (!f) return;
  rte_ether_addr broadcast;
  memset(&broadcast, 0xff, sizeof broadcast);
  for (unsigned k = 0; k < i.n_addresses; k++) {
    uint8_t* at;
    rte_mbuf* m = frame(io, *f, i, broadcast, RTE_ETHER_TYPE_ARP, sizeof(rte_arp_hdr), &at);
    if (!m) return;
    auto* arp = reinterpret_cast<rte_arp_hdr*>(at);
    arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
    arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    arp->arp_hlen = RTE_ETHER_ADDR_LEN;
    arp->arp_plen = 4;
    arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);  // a request: every stack updates on it
    arp->arp_data.arp_sha = virtual_mac(i.vrid);
    arp->arp_data.arp_sip = rte_cpu_to_be_32(i.addresses[k]);
    arp->arp_data.arp_tha = broadcast;
    arp->arp_data.arp_tip = rte_cpu_to_be_32(i.addresses[k]);
    if (hand_to_worker(io, m)) e.garps++;
  }
}

bool Runner::group_in_fault(const dp::Tables& t, const Instance& i) const {
  for (const auto& o : t.vrrp.instances) {
    if (&o != &i && (i.group.empty() || o.group != i.group)) continue;
    auto e = entries_.find(o.name);
    if (e != entries_.end() && e->second.fault) return true;
  }
  return false;
}

void Runner::act(const dp::Tables& t, const Io& io, const Instance& i, Entry& e, const Actions& a, uint64_t now) {
  if (a.advert_zero) send_advert(t, io, i, e, 0);
  if (a.changed) {
    e.transitions++;
    e.last.push_back({realtime_ns(), a.from, e.m.state, a.reason});
    while (e.last.size() > kept_transitions) e.last.pop_front();
    medix::common::log(medix::common::LogLevel::notice, "medix-dp: VRRP %s (VRID %u): %s -> %s (%s)", i.name.c_str(),
                       unsigned(i.vrid), name(a.from), name(e.m.state), name(a.reason));
  }
  // The node's role follows its HA group: active before the gratuitous ARP brings the
  // segment's traffic here (the sync thread then advances the SAs), standby once it yields.
  bool drives_role = a.changed && io.ha_standby && io.ha_group && !io.ha_group->empty() && i.group == *io.ha_group;
  if (drives_role && e.m.state == State::master) {
    set_role(io, false, i, transition(a, false));
    if (io.ha_draining) io.ha_draining->store(false);
  }
  // Yielding to a better master (not for a fault): drain for three of its intervals, which
  // covers the switch's relearning from its next advert with one advert lost.
  bool drain = a.changed && a.from == State::master && e.m.state == State::backup &&
               (a.reason == Reason::higher_priority || a.reason == Reason::group) && !group_in_fault(t, i);
  if (a.changed) e.drain_until = drain ? now + 3 * uint64_t(e.m.master_interval_cs) * ns_per_cs : 0;
  if (drain && drives_role && io.ha_draining) io.ha_draining->store(true);
  // Workers see the new owner of the virtual MAC before the world hears of it.
  e.live->master.store(e.m.state == State::master, std::memory_order_relaxed);
  e.live->draining.store(e.drain_until != 0, std::memory_order_relaxed);
  if (a.advert) send_advert(t, io, i, e, e.m.p.priority);
  if (a.garp) send_garps(t, io, i, e);
  if (drives_role && a.from == State::master && !drain) {
    set_role(io, true, i, transition(a, true));
    if (io.ha_draining) io.ha_draining->store(false);
  }
}

// Drains that ran out: the frames stop; the node is standby once none of its HA group's
// instances is master or draining.
void Runner::end_drains(const dp::Tables& t, const Io& io, uint64_t now) {
  for (const auto& i : t.vrrp.instances) {
    auto it = entries_.find(i.name);
    if (it == entries_.end() || !it->second.drain_until || now < it->second.drain_until) continue;
    Entry& e = it->second;
    e.drain_until = 0;
    e.live->draining.store(false, std::memory_order_relaxed);
    if (e.m.state == State::master) continue;
    if (!io.ha_standby || !io.ha_group || io.ha_group->empty() || i.group != *io.ha_group) continue;
    bool busy = false;
    for (const auto& o : t.vrrp.instances) {
      auto oe = entries_.find(o.name);
      if (o.group == i.group && oe != entries_.end() && (oe->second.m.state == State::master || oe->second.drain_until))
        busy = true;
    }
    if (busy) continue;
    set_role(io, true, i, "master -> backup, drained");
    if (io.ha_draining) io.ha_draining->store(false);
  }
}

// A role change's reason, as the role history shows it. master_down: the master's adverts
// stopped, which is how a node sees its peer lost.
std::string Runner::transition(const Actions& a, bool standby) {
  return std::string(name(a.from)) + " -> " + (standby ? "backup" : "master") + ", " + name(a.reason) +
         (a.reason == Reason::master_down ? " (peer lost)" : "");
}

void Runner::set_role(const Io& io, bool standby, const Instance& i, const std::string& how) {
  if (io.set_role) {
    io.set_role(standby, i.name + " of group " + i.group + ": " + how);
    return;
  }
  if (io.ha_standby->exchange(standby) == standby) return;
  medix::common::log(medix::common::LogLevel::notice, "medix-dp: HA: VRRP %s of group %s %s: this node is %s",
                     i.name.c_str(), i.group.c_str(), standby ? "left master" : "became master",
                     standby ? "standby" : "active");
}

void Runner::poll(const dp::Tables& t, rte_ring* from_workers, const Io& io, uint64_t now) {
  std::lock_guard lock(mutex_);
  if (t.vrrp.instances.empty() && entries_.empty()) {
    if (from_workers) receive(t, from_workers, now);  // counted as unknown VRIDs
    return;
  }
  pending_.clear();
  sync(t, now);
  receive(t, from_workers, now);
  track(t, io, now);
  // Groups: a member that hears a live master, or is in fault, holds the others back.
  auto held = [&](const Instance& i) {
    if (i.group.empty()) return false;
    for (const auto& o : t.vrrp.instances) {
      if (&o == &i || o.group != i.group) continue;
      auto e = entries_.find(o.name);
      if (e != entries_.end() && (e->second.fault || e->second.m.hearing_master(now))) return true;
    }
    return false;
  };
  for (const auto& i : t.vrrp.instances) {
    auto e = entries_.find(i.name);
    if (e != entries_.end()) pending_.push_back({i.name, e->second.m.tick(now, held(i))});
  }
  // Transitions carry the group along: one member stepping down or up takes the others.
  for (size_t k = 0; k < pending_.size(); k++) {
    auto [who, a] = pending_[k];
    const Instance* i = find(t, who);
    auto e = entries_.find(who);
    if (!i || e == entries_.end()) continue;
    act(t, io, *i, e->second, a, now);
    if (!a.changed || a.reason == Reason::group || i->group.empty()) continue;
    for (const auto& o : t.vrrp.instances) {
      if (&o == i || o.group != i->group) continue;
      Entry& oe = entries_.at(o.name);
      if (e->second.m.state == State::backup && oe.m.state == State::master)
        pending_.push_back({o.name, oe.m.to_backup(now, Reason::group)});
      else if (e->second.m.state == State::master && oe.m.state == State::backup && !oe.fault &&
               !oe.m.hearing_master(now))
        pending_.push_back({o.name, oe.m.to_master(now, Reason::group)});
    }
  }
  end_drains(t, io, now);
}

void Runner::resign(const dp::Tables& t, const Io& io) {
  std::lock_guard lock(mutex_);
  for (const auto& i : t.vrrp.instances) {
    auto e = entries_.find(i.name);
    if (e == entries_.end() || e->second.m.state != State::master) continue;
    send_advert(t, io, i, e->second, 0);
    e->second.live->master.store(false, std::memory_order_relaxed);
    e->second.live->draining.store(false, std::memory_order_relaxed);
  }
}

std::vector<Status> Runner::status() const {
  std::lock_guard lock(mutex_);
  std::vector<Status> out;
  for (const auto& [name, e] : entries_) {
    Status s;
    s.name = name;
    s.vrid = e.m.p.vrid;
    s.state = e.m.state;
    s.priority = e.priority;
    s.fault = e.fault;
    s.effective_priority = e.fault ? 0 : e.m.p.priority;
    s.master_address = e.m.master_address;
    s.master_priority = e.m.master_priority;
    s.master_interval_cs = e.m.state == State::master ? e.m.p.interval_cs : e.m.master_interval_cs;
    s.adverts_received = e.rx;
    s.adverts_sent = e.tx;
    s.garps_sent = e.garps;
    s.transitions = e.transitions;
    s.last.assign(e.last.begin(), e.last.end());
    out.push_back(std::move(s));
  }
  return out;
}

RxErrors Runner::rx_errors() const {
  std::lock_guard lock(mutex_);
  return errors_;
}

}  // namespace medix::dp::vrrp
