#include "capture.h"

#include <google/protobuf/util/json_util.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include "output.h"

namespace medix::ctl {

namespace {

// pcapng (draft-ietf-opsawg-pcapng): every block is type, total length, body, total length;
// everything little-endian here (the byte-order magic tells readers).
class Block {
 public:
  explicit Block(uint32_t type) : type_(type) {}
  void u16(uint16_t v) { bytes(&v, 2); }
  void u32(uint32_t v) { bytes(&v, 4); }
  void bytes(const void* p, size_t n) { body_.append(static_cast<const char*>(p), n); }
  void pad() { body_.append((4 - body_.size() % 4) % 4, '\0'); }
  void option(uint16_t code, const std::string& value) {
    u16(code);
    u16(uint16_t(value.size()));
    bytes(value.data(), value.size());
    pad();
  }
  void option_u8(uint16_t code, uint8_t value) {
    u16(code);
    u16(1);
    bytes(&value, 1);
    pad();
  }
  void end_options() { u32(0); }  // opt_endofopt, length 0
  void write(std::ostream& out) const {
    uint32_t total = uint32_t(body_.size() + 12);
    out.write(reinterpret_cast<const char*>(&type_), 4);
    out.write(reinterpret_cast<const char*>(&total), 4);
    out.write(body_.data(), std::streamsize(body_.size()));
    out.write(reinterpret_cast<const char*>(&total), 4);
  }

 private:
  uint32_t type_;
  std::string body_;
};

constexpr uint32_t shb_type = 0x0A0D0D0A, idb_type = 1, epb_type = 6;
constexpr uint16_t opt_comment = 1, shb_userappl = 4, if_name = 2, if_description = 3, if_tsresol = 9;
constexpr uint16_t linktype_ethernet = 1;

std::atomic<bool> interrupted{false};
void on_interrupt(int) { interrupted.store(true); }

const char* point_name(v1::CapturePoint point) {
  switch (point) {
    case v1::CAPTURE_RX: return "rx";
    case v1::CAPTURE_TX: return "tx";
    case v1::CAPTURE_DROP: return "drop";
    default: return "?";
  }
}

}  // namespace

std::string capture_interface_name(const v1::CapturedPacket& p) {
  if (p.interface().empty()) return p.port().empty() ? "(unknown)" : p.port() + " (no interface)";
  return p.interface() + " (" + p.tenant() + ")";
}

std::string capture_comment(const v1::CapturedPacket& p) {
  if (p.point() == v1::CAPTURE_DROP) return "drop: " + p.drop_reason();
  return point_name(p.point());
}

PcapngWriter::PcapngWriter(std::ostream& out, uint32_t snaplen) : out_(out), snaplen_(snaplen) {
  Block shb(shb_type);
  shb.u32(0x1A2B3C4D);
  shb.u16(1);
  shb.u16(0);
  uint64_t unknown_length = UINT64_MAX;
  shb.bytes(&unknown_length, 8);
  shb.option(shb_userappl, "medixctl capture");
  shb.end_options();
  shb.write(out_);
}

uint32_t PcapngWriter::interface_of(const v1::CapturedPacket& p) {
  std::string name = capture_interface_name(p);
  auto [it, added] = interfaces_.try_emplace(name, uint32_t(interfaces_.size()));
  if (added) {
    Block idb(idb_type);
    idb.u16(linktype_ethernet);
    idb.u16(0);
    idb.u32(snaplen_);
    idb.option(if_name, name);
    idb.option(if_description, "medix-dp port " + p.port());
    idb.option_u8(if_tsresol, 9);  // nanoseconds
    idb.end_options();
    idb.write(out_);
  }
  return it->second;
}

void PcapngWriter::write(const v1::CapturedPacket& p) {
  uint32_t id = interface_of(p);
  Block epb(epb_type);
  epb.u32(id);
  epb.u32(uint32_t(p.timestamp_ns() >> 32));
  epb.u32(uint32_t(p.timestamp_ns()));
  epb.u32(uint32_t(p.data().size()));
  epb.u32(p.original_length());
  epb.bytes(p.data().data(), p.data().size());
  epb.pad();
  epb.option(opt_comment, capture_comment(p));
  epb.end_options();
  epb.write(out_);
  out_.flush();
}

bool take_filter_option(Args& args, v1::CaptureRequest& request) {
  if (args.take("--port"))
    request.set_port(args.next("a port name"));
  else if (args.take("--interface"))
    request.set_interface(args.next("an interface name"));
  else if (args.take("--tenant"))
    request.set_tenant(args.next("a tenant name"));
  else if (args.take("--vlan"))
    request.set_vlan(args.next_u32("--vlan"));
  else if (args.take("--sa"))
    request.set_sa_spi(args.next_u32("--sa"));
  else if (args.take("--filter"))
    request.set_bpf(args.next("a BPF expression"));
  else
    return false;
  return true;
}

int capture_command(Client& client, Args& args, bool json) {
  v1::CaptureRequest request;
  std::string file;
  while (!args.done()) {
    if (take_filter_option(args, request))
      continue;
    else if (args.take("--drops")) {
      request.add_points(v1::CAPTURE_DROP);
      if (!args.done() && !args.peek().starts_with("-")) request.set_drop_reason(args.next("a drop reason"));
    } else if (args.take("--rx"))
      request.add_points(v1::CAPTURE_RX);
    else if (args.take("--tx"))
      request.add_points(v1::CAPTURE_TX);
    else if (args.take("-c") || args.take("--count"))
      request.set_max_packets(args.next_u32("--count"));
    else if (args.take("--duration"))
      request.set_duration_ms(args.next_u32("--duration") * 1000);
    else if (args.take("--snaplen"))
      request.set_snaplen(args.next_u32("--snaplen"));
    else if (args.take("--rate"))
      request.set_rate_pps(args.next_u32("--rate"));
    else if (args.take("-w"))
      file = args.next("a file name (- for stdout)");
    else
      throw UsageError("capture: unknown option " + args.peek());
  }
  std::ofstream out_file;
  std::ostream* out = nullptr;
  if (file == "-") {
    out = &std::cout;
  } else if (!file.empty()) {
    out_file.open(file, std::ios::binary | std::ios::trunc);
    if (!out_file) throw Failure(file + ": cannot open for writing: " + std::strerror(errno));
    out = &out_file;
  }
  std::optional<PcapngWriter> writer;
  if (out) writer.emplace(*out, request.snaplen() ? request.snaplen() : 2048);
  // Where the summary goes: not into the pcapng on stdout.
  std::ostream& note = file == "-" ? std::cerr : std::cout;
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  uint64_t packets = 0;
  uint64_t lost = client.capture(
      request,
      [&](const v1::CapturedPacket& p) {
        packets++;
        if (writer) {
          writer->write(p);
        } else if (json) {
          std::string s;
          google::protobuf::util::JsonPrintOptions o;
          o.preserve_proto_field_names = true;
          (void)google::protobuf::util::MessageToJsonString(p, &s, o);
          std::cout << s << "\n";
        } else {
          std::cout << format_time(p.timestamp_ns()) << " " << capture_comment(p) << " " << capture_interface_name(p)
                    << " len " << p.original_length() << "\n";
          std::cout.flush();
        }
      },
      interrupted);
  note << packets << " packets captured, " << lost << " lost (rate limit or full ring)\n";
  return 0;
}

}  // namespace medix::ctl
