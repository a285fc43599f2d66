#include "knot.h"

#include <array>
#include <set>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace medix::cp::dns {

namespace {

constexpr int timeout_ms = 5000;

// Knot's control protocol (knotc's; libknot/control/control.h of Knot 3.x): a stream of units,
// each a code byte: 0 end, 1 data, 2 extra data, 3 end of block; a data unit goes on with items,
// each a byte 16 + index, a 16-bit big-endian length and that many bytes. Spoken here rather than
// through libknot, which is GPL-3.0-or-later and would make the medix-cp binary so.
enum Unit : uint8_t { END = 0, DATA = 1, EXTRA = 2, BLOCK = 3 };
enum Item { CMD = 0, FLAGS, ERROR, SECTION, ITEM, ID, ZONE, OWNER, TTL, TYPE, VALUE, FILTER, COUNT };
constexpr uint8_t item_code = 16;

// knotd's texts for the errors that are not failures here.
constexpr const char* no_zone = "no such zone found";
constexpr const char* empty_zone = "zone is empty";
constexpr const char* no_entry = "not exists";

using Fields = std::array<std::string, COUNT>;
using Present = std::array<bool, COUNT>;

}  // namespace

// One connection to knotd: commands sent one after the other, each answered before the next.
struct Knot::Session {
  int fd = -1;
  std::string error;  // the connection's: once set, every command fails with it
  std::string in;     // received, not yet parsed
  size_t at = 0;

  explicit Session(const std::string& socket) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket.size() >= sizeof(addr.sun_path)) {
      error = socket + ": path too long";
      return;
    }
    memcpy(addr.sun_path, socket.c_str(), socket.size());
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      error = socket + ": " + strerror(errno);
  }
  ~Session() {
    if (fd >= 0 && error.empty()) send({char(END)});
    if (fd >= 0) close(fd);
  }

  bool send(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = std::string("sending to knotd: ") + strerror(errno);
        return false;
      }
      done += size_t(n);
    }
    return true;
  }
  // The next `n` bytes received, waiting up to the timeout for them.
  bool need(size_t n) {
    while (in.size() - at < n) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) {
        error = "knotd did not answer";
        return false;
      }
      char buf[65536];
      ssize_t got = recv(fd, buf, sizeof(buf), 0);
      if (got <= 0) {
        error = got == 0 ? "knotd closed the connection" : std::string("from knotd: ") + strerror(errno);
        return false;
      }
      in.append(buf, size_t(got));
    }
    return true;
  }
  // One unit: its code, and its items (data units). False on a broken connection.
  bool receive(uint8_t& unit, Fields& f, Present& present) {
    present.fill(false);
    if (!need(1)) return false;
    unit = uint8_t(in[at++]);
    if (unit != DATA && unit != EXTRA) return true;
    while (true) {
      if (in.size() - at == 0 && !need(1)) return false;
      const uint8_t code = uint8_t(in[at]);
      if (code < item_code) return true;  // the next unit
      if (code >= item_code + COUNT) {
        error = "knotd sent an item this client does not know (code " + std::to_string(code) + ")";
        return false;
      }
      at++;
      if (!need(2)) return false;
      const size_t len = (uint8_t(in[at]) << 8) | uint8_t(in[at + 1]);
      at += 2;
      if (!need(len)) return false;
      f[code - item_code] = in.substr(at, len);
      present[code - item_code] = true;
      at += len;
    }
  }

  // Sends a command, gathers its data units; "" or the error (knotd's own text, or the socket's).
  // `on_data` gets each record unit, with the fields a unit leaves out taken from the one before.
  template <typename OnData>
  std::string command(const Fields& data, OnData on_data) {
    if (!error.empty()) return error;
    std::string out(1, char(DATA));
    for (int i = 0; i < COUNT; i++) {
      if (data[i].empty()) continue;
      out += char(item_code + i);
      out += char(data[i].size() >> 8);
      out += char(data[i].size() & 0xff);
      out += data[i];
    }
    out += char(BLOCK);
    if (!send(out)) return error;
    std::string failed;
    Fields last;
    while (true) {
      uint8_t unit;
      Fields f;
      Present present;
      if (!receive(unit, f, present)) return error;
      if (unit == BLOCK || unit == END) break;
      if (present[ERROR]) {
        if (failed.empty()) failed = f[ERROR];
        continue;
      }
      for (int i = 0; i < COUNT; i++)
        if (present[i]) last[i] = f[i];
      if (present[VALUE]) on_data(last);
    }
    in.erase(0, at);
    at = 0;
    return failed;
  }
  std::string command(const Fields& data) {
    return command(data, [](const Fields&) {});
  }
};

std::optional<Zone> Knot::read(const std::string& zone, std::string& error) {
  Session s(socket_);
  Fields data;
  data[CMD] = "zone-read";
  data[ZONE] = zone;
  Zone out;
  error = s.command(data, [&](const Fields& f) {
    Record r{f[OWNER], uint32_t(std::stoul("0" + f[TTL])), f[TYPE], f[VALUE]};
    if (r.type == "SOA") r.data = soa_without_serial(r.data);
    // Knot's own when it signs the zone (dnssec-signing): never the intent's, never compared.
    static const std::set<std::string> signing{"RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY"};
    if (!signing.count(r.type)) out.insert(r);
  });
  if (error == no_zone) {
    error.clear();
    return std::nullopt;
  }
  // A zone Knot knows with no content yet (just added to the catalog, or knotd just restarted).
  if (error == empty_zone || error == no_entry) {
    error.clear();
    return Zone{};
  }
  if (!error.empty()) return std::nullopt;
  return out;
}

std::string Knot::update(const std::string& zone, const Zone& remove, const Zone& add) {
  Session s(socket_);
  Fields data;
  data[ZONE] = zone;
  data[CMD] = "zone-begin";
  auto abort = [&](const std::string& what) {
    Fields a;
    a[CMD] = "zone-abort";
    a[ZONE] = zone;
    s.command(a);
    return what;
  };
  // A transaction left open (a medix-cp that died in one, or someone's knotc) is ours to end.
  if (std::string e = s.command(data); !e.empty()) {
    abort("");
    if (e = s.command(data); !e.empty()) return "zone-begin " + zone + ": " + e;
  }
  for (const Record& r : remove) {
    if (r.type == "SOA") continue;  // replaced by the zone-set of the new one
    Fields u;
    u[CMD] = "zone-unset";
    u[ZONE] = zone;
    u[OWNER] = r.owner;
    u[TYPE] = r.type;
    u[VALUE] = r.data;
    if (std::string e = s.command(u); !e.empty())
      return abort("zone-unset " + r.owner + " " + r.type + " " + r.data + ": " + e);
  }
  for (const Record& r : add) {
    std::string value = r.data, ttl = std::to_string(r.ttl);
    // The SOA is set whole, with the clock's time as its serial; Knot counts on from there at
    // each commit (zone-read's SOA, without its serial, is what is compared).
    if (r.type == "SOA") {
      size_t second = value.find(' ', value.find(' ') + 1);
      value = value.substr(0, second) + " " + std::to_string(time(nullptr)) + value.substr(second);
    }
    Fields u;
    u[CMD] = "zone-set";
    u[ZONE] = zone;
    u[OWNER] = r.owner;
    u[TTL] = ttl;
    u[TYPE] = r.type;
    u[VALUE] = value;
    if (std::string e = s.command(u); !e.empty())
      return abort("zone-set " + r.owner + " " + r.type + " " + r.data + ": " + e);
  }
  data[CMD] = "zone-commit";
  if (std::string e = s.command(data); !e.empty()) return abort("zone-commit " + zone + ": " + e);
  return "";
}

std::string Knot::reload() {
  Session s(socket_);
  Fields data;
  data[CMD] = "reload";
  return s.command(data);
}

}  // namespace medix::cp::dns
