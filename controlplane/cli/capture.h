#pragma once
// medixctl capture: packets from medix-dp's workers (the Capture RPC) into a pcapng file that
// tshark and Wireshark read, one pcapng interface per medix interface and tenant, the point
// (rx, tx) or the drop reason in each packet's comment.
#include <cstdint>
#include <ostream>
#include <string>
#include <unordered_map>

#include "args.h"
#include "client.h"

namespace medix::ctl {

// A pcapng section written as packets come: an Interface Description Block the first time a
// medix interface/tenant (the IDB's name, "interface (tenant)") is seen, then its packets.
class PcapngWriter {
 public:
  explicit PcapngWriter(std::ostream& out, uint32_t snaplen);
  void write(const v1::CapturedPacket& packet);

 private:
  uint32_t interface_of(const v1::CapturedPacket& packet);
  std::ostream& out_;
  uint32_t snaplen_;
  std::unordered_map<std::string, uint32_t> interfaces_;
};

// What an IDB is named after: "interface (tenant)", or the port's name for a frame that no
// interface took.
std::string capture_interface_name(const v1::CapturedPacket& packet);
// The packet comment: "rx", "tx" or "drop: REASON".
std::string capture_comment(const v1::CapturedPacket& packet);

// Consumes one of the filter options capture and trace share (--port, --interface, --tenant,
// --vlan, --sa, --filter) into `request`; false if the next word is none of them.
bool take_filter_option(Args& args, v1::CaptureRequest& request);

int capture_command(Client& client, Args& args, bool json);

}  // namespace medix::ctl
