#include "knot.h"

// libknot's headers are C without extern "C" of their own.
extern "C" {
#include <libknot/control/control.h>
#include <libknot/errcode.h>
#include <libknot/error.h>
}

namespace medix::cp::dns {

namespace {

constexpr int timeout_ms = 5000;

}  // namespace

// One connection to knotd: commands sent one after the other, each answered before the next.
struct Knot::Session {
  knot_ctl_t* ctl = knot_ctl_alloc();
  std::string error;  // the connection's: once set, every command fails with it
  bool connected = false;

  explicit Session(const std::string& socket) {
    knot_ctl_set_timeout(ctl, timeout_ms);
    if (int rc = knot_ctl_connect(ctl, socket.c_str()); rc != KNOT_EOK)
      error = socket + ": " + knot_strerror(rc);
    else
      connected = true;
  }
  ~Session() {
    if (connected && error.empty()) knot_ctl_send(ctl, KNOT_CTL_TYPE_END, nullptr);
    knot_ctl_close(ctl);
    knot_ctl_free(ctl);
  }

  // Sends a command, gathers its data units; "" or the error (knotd's own text, or the socket's).
  // `on_data` gets each record unit, with the fields a unit leaves out taken from the one before.
  template <typename OnData>
  std::string command(knot_ctl_data_t& data, OnData on_data) {
    if (!error.empty()) return error;
    if (int rc = knot_ctl_send(ctl, KNOT_CTL_TYPE_DATA, &data); rc != KNOT_EOK) return error = knot_strerror(rc);
    if (int rc = knot_ctl_send(ctl, KNOT_CTL_TYPE_BLOCK, nullptr); rc != KNOT_EOK) return error = knot_strerror(rc);
    std::string failed;
    std::string last[KNOT_CTL_IDX__COUNT];
    while (true) {
      knot_ctl_type_t type;
      knot_ctl_data_t in = {};
      if (int rc = knot_ctl_receive(ctl, &type, &in); rc != KNOT_EOK) return error = knot_strerror(rc);
      if (type == KNOT_CTL_TYPE_BLOCK || type == KNOT_CTL_TYPE_END) break;
      if (in[KNOT_CTL_IDX_ERROR]) {
        if (failed.empty()) failed = in[KNOT_CTL_IDX_ERROR];
        continue;
      }
      for (int i = 0; i < KNOT_CTL_IDX__COUNT; i++)
        if (in[i]) last[i] = in[i];
      if (in[KNOT_CTL_IDX_DATA]) on_data(last);
    }
    return failed;
  }
  std::string command(knot_ctl_data_t& data) {
    return command(data, [](const std::string*) {});
  }
};

std::optional<Zone> Knot::read(const std::string& zone, std::string& error) {
  Session s(socket_);
  knot_ctl_data_t data = {};
  data[KNOT_CTL_IDX_CMD] = "zone-read";
  data[KNOT_CTL_IDX_ZONE] = zone.c_str();
  Zone out;
  error = s.command(data, [&](const std::string* f) {
    Record r{f[KNOT_CTL_IDX_OWNER], uint32_t(std::stoul("0" + f[KNOT_CTL_IDX_TTL])), f[KNOT_CTL_IDX_TYPE],
             f[KNOT_CTL_IDX_DATA]};
    if (r.type == "SOA") r.data = soa_without_serial(r.data);
    out.insert(r);
  });
  if (error == knot_strerror(KNOT_ENOZONE)) {
    error.clear();
    return std::nullopt;
  }
  // A zone Knot knows with no content yet (just added to the catalog, or knotd just restarted).
  if (error == knot_strerror(KNOT_EEMPTYZONE) || error == knot_strerror(KNOT_ENOENT)) {
    error.clear();
    return Zone{};
  }
  if (!error.empty()) return std::nullopt;
  return out;
}

std::string Knot::update(const std::string& zone, const Zone& remove, const Zone& add) {
  Session s(socket_);
  knot_ctl_data_t data = {};
  data[KNOT_CTL_IDX_ZONE] = zone.c_str();
  data[KNOT_CTL_IDX_CMD] = "zone-begin";
  if (std::string e = s.command(data); !e.empty()) return "zone-begin " + zone + ": " + e;
  auto abort = [&](const std::string& what) {
    knot_ctl_data_t a = {};
    a[KNOT_CTL_IDX_CMD] = "zone-abort";
    a[KNOT_CTL_IDX_ZONE] = zone.c_str();
    s.command(a);
    return what;
  };
  for (const Record& r : remove) {
    if (r.type == "SOA") continue;  // replaced by the zone-set of the new one
    knot_ctl_data_t u = {};
    u[KNOT_CTL_IDX_CMD] = "zone-unset";
    u[KNOT_CTL_IDX_ZONE] = zone.c_str();
    u[KNOT_CTL_IDX_OWNER] = r.owner.c_str();
    u[KNOT_CTL_IDX_TYPE] = r.type.c_str();
    u[KNOT_CTL_IDX_DATA] = r.data.c_str();
    if (std::string e = s.command(u); !e.empty())
      return abort("zone-unset " + r.owner + " " + r.type + " " + r.data + ": " + e);
  }
  for (const Record& r : add) {
    std::string value = r.data, ttl = std::to_string(r.ttl);
    // The SOA is set whole: its serial, from the clock, is only the first; Knot counts on from it
    // (an SOA whose serial goes back is refused, so a changed SOA keeps a higher one).
    if (r.type == "SOA") {
      size_t second = value.find(' ', value.find(' ') + 1);
      value = value.substr(0, second) + " " + std::to_string(time(nullptr)) + value.substr(second);
    }
    knot_ctl_data_t u = {};
    u[KNOT_CTL_IDX_CMD] = "zone-set";
    u[KNOT_CTL_IDX_ZONE] = zone.c_str();
    u[KNOT_CTL_IDX_OWNER] = r.owner.c_str();
    u[KNOT_CTL_IDX_TTL] = ttl.c_str();
    u[KNOT_CTL_IDX_TYPE] = r.type.c_str();
    u[KNOT_CTL_IDX_DATA] = value.c_str();
    if (std::string e = s.command(u); !e.empty())
      return abort("zone-set " + r.owner + " " + r.type + " " + r.data + ": " + e);
  }
  data[KNOT_CTL_IDX_CMD] = "zone-commit";
  if (std::string e = s.command(data); !e.empty()) return abort("zone-commit " + zone + ": " + e);
  return "";
}

}  // namespace medix::cp::dns
