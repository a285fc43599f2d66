#pragma once
// One VRRP instance's state machine (RFC 5798 6.4), with no clock and no I/O of its own: the
// caller (vrrp/runner.h, on the main lcore) gives it the time and the adverts it heard, and
// does what the returned Actions say. Times are nanoseconds of a monotonic clock.
#include <cstdint>

#include "vrrp/packet.h"

namespace medix::dp::vrrp {

enum class State : uint8_t { initialize, backup, master };
enum class Reason : uint8_t { start, master_down, higher_priority, preempt, priority_zero, link_down, link_up, group };
const char* name(State s);
const char* name(Reason r);

struct Params {
  uint8_t vrid = 1;
  uint8_t priority = 100;  // effective: after tracking
  uint16_t interval_cs = 100;
  bool preempt = false;
  uint32_t primary = 0;  // our address on the segment: the adverts' source, the tie-break
  bool fault = false;    // a tracked link of weight 0 is down: never master
};

// What the caller does after an event.
struct Actions {
  bool changed = false;  // the state changed (from `from`, for `reason`)
  State from = State::initialize;
  Reason reason = Reason::start;
  bool advert = false;       // send an advert now
  bool advert_zero = false;  // send an advert of priority 0 now (a master stepping down)
  bool garp = false;         // send gratuitous ARP for every address (a new master)
};

inline constexpr uint64_t ns_per_cs = 10'000'000;

class Machine {
 public:
  Params p;
  State state = State::initialize;
  uint16_t master_interval_cs = 100;  // Master_Adver_Interval: the master's, as heard
  uint64_t master_down_at = 0;        // Backup: the Master_Down_Timer's expiry
  uint64_t advert_at = 0;             // Master: the Adver_Timer's expiry
  uint32_t master_address = 0;        // the master heard (ours as master)
  uint8_t master_priority = 0;
  uint64_t heard_at = 0;  // Backup: the last advert that kept us backup
  bool ignored = false;   // Backup, preempting: a lower priority's adverts were ignored

  uint64_t skew() const { return uint64_t(256 - p.priority) * master_interval_cs * ns_per_cs / 256; }
  uint64_t master_down_interval() const { return 3 * uint64_t(master_interval_cs) * ns_per_cs + skew(); }
  // A live master is heard (for groups: a member that hears one holds the others back).
  bool hearing_master(uint64_t now) const {
    return state == State::backup && heard_at && now < heard_at + master_down_interval();
  }

  Actions start(uint64_t now);
  Actions advert(const Advert& a, uint64_t now);
  // Timers. `held`: another member of the group hears a live master or is in fault; the
  // Master_Down_Timer then starts again instead of making this one master.
  Actions tick(uint64_t now, bool held = false);
  // New parameters (an UPDATE, a tracked link): a master in fault steps down at once.
  Actions update(const Params& next, uint64_t now, Reason why);
  Actions to_backup(uint64_t now, Reason why);  // a master steps down with priority 0
  Actions to_master(uint64_t now, Reason why);
  // The earliest time tick() has something to do.
  uint64_t next_event() const { return state == State::master ? advert_at : master_down_at; }
};

}  // namespace medix::dp::vrrp
