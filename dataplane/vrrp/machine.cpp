#include "vrrp/machine.h"

namespace medix::dp::vrrp {

const char* name(State s) {
  switch (s) {
    case State::initialize: return "initialize";
    case State::backup: return "backup";
    case State::master: return "master";
  }
  return "?";
}

const char* name(Reason r) {
  switch (r) {
    case Reason::start: return "start";
    case Reason::master_down: return "master_down";
    case Reason::higher_priority: return "higher_priority";
    case Reason::preempt: return "preempt";
    case Reason::priority_zero: return "priority_zero";
    case Reason::link_down: return "link_down";
    case Reason::link_up: return "link_up";
    case Reason::group: return "group";
  }
  return "?";
}

namespace {
Actions moved(State from, Reason why) {
  Actions a;
  a.changed = true;
  a.from = from;
  a.reason = why;
  return a;
}
}  // namespace

// 6.4.1: priority 255 (the owner) is not built, so every start is as backup.
Actions Machine::start(uint64_t now) {
  State from = state;
  state = State::backup;
  master_interval_cs = p.interval_cs;
  master_down_at = now + master_down_interval();
  heard_at = 0;
  master_address = 0;
  master_priority = 0;
  return moved(from, Reason::start);
}

Actions Machine::to_master(uint64_t now, Reason why) {
  State from = state;
  state = State::master;
  advert_at = now + uint64_t(p.interval_cs) * ns_per_cs;
  master_address = p.primary;
  master_priority = p.priority;
  heard_at = 0;
  ignored = false;
  Actions a = moved(from, why);
  a.advert = true;
  a.garp = true;
  return a;
}

Actions Machine::to_backup(uint64_t now, Reason why) {
  State from = state;
  if (from == State::backup) return {};
  state = State::backup;
  master_interval_cs = p.interval_cs;
  master_down_at = now + master_down_interval();
  heard_at = 0;
  master_address = 0;
  master_priority = 0;
  Actions a = moved(from, why);
  a.advert_zero = from == State::master;  // 6.4.3's shutdown: the backups take over after skew
  return a;
}

Actions Machine::advert(const Advert& a, uint64_t now) {
  if (a.vrid != p.vrid) return {};
  if (state == State::backup) {
    if (a.priority == 0) {
      master_down_at = now + skew();  // 6.4.2: the master left; take over after the skew
      heard_at = 0;
      return {};
    }
    if (!p.preempt || a.priority >= p.priority) {
      master_interval_cs = a.interval_cs ? a.interval_cs : 1;
      master_down_at = now + master_down_interval();
      master_address = a.source;
      master_priority = a.priority;
      heard_at = now;
      ignored = false;
    } else {
      ignored = true;  // preempt: let the timer run out
    }
    return {};
  }
  if (state == State::master) {
    if (a.priority == 0) {  // 6.4.3: another master left: tell the backups we are here
      advert_at = now + uint64_t(p.interval_cs) * ns_per_cs;
      Actions out;
      out.advert = true;
      return out;
    }
    if (a.priority > p.priority || (a.priority == p.priority && a.source > p.primary)) {
      State from = state;
      state = State::backup;
      master_interval_cs = a.interval_cs ? a.interval_cs : 1;
      master_down_at = now + master_down_interval();
      master_address = a.source;
      master_priority = a.priority;
      heard_at = now;
      return moved(from, Reason::higher_priority);
    }
  }
  return {};
}

Actions Machine::tick(uint64_t now, bool held) {
  if (state == State::master) {
    if (now < advert_at) return {};
    // From the time it was due, not from now: a late loop does not stretch the interval.
    advert_at += uint64_t(p.interval_cs) * ns_per_cs;
    if (advert_at <= now) advert_at = now + uint64_t(p.interval_cs) * ns_per_cs;
    Actions a;
    a.advert = true;
    return a;
  }
  if (state != State::backup || now < master_down_at) return {};
  if (p.fault || held) {
    master_down_at = now + master_down_interval();
    return {};
  }
  return to_master(now, ignored ? Reason::preempt : Reason::master_down);
}

Actions Machine::update(const Params& next, uint64_t now, Reason why) {
  bool was_fault = p.fault;
  p = next;
  if (state == State::master && p.fault) return to_backup(now, why);
  if (state == State::backup && was_fault && !p.fault) master_down_at = now + master_down_interval();
  return {};
}

}  // namespace medix::dp::vrrp
