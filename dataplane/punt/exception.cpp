#include "punt/exception.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <rte_arp.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "infra/worker.h"
#include "tables/tables.h"

namespace medix::dp {

namespace {
// The MAC the kernel sees as every peer's: medix-dp answers all ARP on the TAP with it.
const rte_ether_addr dataplane_mac = {{0x02, 0x6d, 0x78, 0x00, 0x00, 0x01}};

// Whether `address` is medix-dp's own in `tenant` (a local route or an interface's address).
bool local_in(const Tables& tables, uint16_t tenant, uint32_t address) {
  uint64_t nh = 0;
  if (tenant < tables.fib_roots.size() && tables.fib_roots[tenant])
    nh = Lpm::lookup(tables.plies, tables.fib_roots[tenant], address);
  else if (tenant < tables.tenants.size() && tables.tenants[tenant].fib)
    rte_fib_lookup_bulk(tables.tenants[tenant].fib, &address, &nh, 1);
  return nh && tables.nexthops[nh].kind == NexthopKind::local;
}

// A BGP segment (TCP port 179) or a BFD control packet (UDP to port 3784) from an address of one
// of our interfaces (the area's BGP and BFD daemons on the backbone, docs/areas.md): that
// interface, its tenant in `tenant`; else nullptr.
const InterfaceEntry* daemon_from(const Tables& tables, const uint8_t* frame, size_t len, uint32_t src,
                                  uint16_t& tenant) {
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(frame + sizeof(rte_ether_hdr));
  const size_t header = size_t(ip->version_ihl & 0xf) * 4;
  const uint8_t* l4 = frame + sizeof(rte_ether_hdr) + header;
  if (ip->next_proto_id == IPPROTO_TCP && len >= sizeof(rte_ether_hdr) + header + sizeof(rte_tcp_hdr)) {
    const auto* tcp = reinterpret_cast<const rte_tcp_hdr*>(l4);
    if (tcp->src_port != rte_cpu_to_be_16(179) && tcp->dst_port != rte_cpu_to_be_16(179)) return nullptr;
  } else if (ip->next_proto_id == IPPROTO_UDP && len >= sizeof(rte_ether_hdr) + header + sizeof(rte_udp_hdr)) {
    if (reinterpret_cast<const rte_udp_hdr*>(l4)->dst_port != rte_cpu_to_be_16(3784)) return nullptr;
  } else {
    return nullptr;
  }
  for (const auto& f : tables.interfaces) {
    if (!f.uid || f.tunnel) continue;
    for (unsigned i = 0; i < f.subnet_count; i++)
      if (f.subnets[i].address == src) {
        tenant = f.tenant;
        return &f;
      }
  }
  // A backbone that is an ESP tunnel has no address: the daemon's is a local route of the
  // tunnel's tenant (the core), and the segment is routed there, into the tunnel.
  for (const auto& f : tables.interfaces)
    if (f.uid && f.tunnel && local_in(tables, f.tenant, src)) {
      tenant = f.tenant;
      return &f;
    }
  return nullptr;
}
}  // namespace

ExceptionPort::~ExceptionPort() {
  if (fd_ >= 0) close(fd_);
  rte_ring_free(punt_);
}

std::optional<std::string> ExceptionPort::open(const std::string& name, unsigned socket) {
  if (name.size() >= IFNAMSIZ) return "exception_interface: \"" + name + "\" is longer than 15 characters";
  fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) return std::string("exception_interface: /dev/net/tun: ") + strerror(errno);
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd_, TUNSETIFF, &ifr) < 0) return "exception_interface: cannot create TAP " + name + ": " + strerror(errno);
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq up{};
  strncpy(up.ifr_name, name.c_str(), IFNAMSIZ - 1);
  bool ok = s >= 0 && ioctl(s, SIOCGIFFLAGS, &up) == 0;
  up.ifr_flags |= IFF_UP;
  ok = ok && ioctl(s, SIOCSIFFLAGS, &up) == 0;
  ifreq hw{};
  strncpy(hw.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ok = ok && ioctl(s, SIOCGIFHWADDR, &hw) == 0;
  if (s >= 0) close(s);
  if (!ok) return "exception_interface: cannot bring " + name + " up: " + strerror(errno);
  memcpy(kernel_mac_.addr_bytes, hw.ifr_hwaddr.sa_data, RTE_ETHER_ADDR_LEN);
  punt_ = rte_ring_create("punt", punt_ring_size, int(socket), RING_F_SC_DEQ);
  if (!punt_) return std::string("exception_interface: cannot allocate its ring: ") + more_memory;
  return std::nullopt;
}

void ExceptionPort::answer_arp(const uint8_t* frame, size_t len) {
  if (len < sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)) return;
  uint8_t reply[sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)];
  memcpy(reply, frame, sizeof reply);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(reply);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST)) return;
  eth->dst_addr = eth->src_addr;
  eth->src_addr = dataplane_mac;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  uint32_t asker = arp->arp_data.arp_sip;
  arp->arp_data.arp_sip = arp->arp_data.arp_tip;
  arp->arp_data.arp_tip = asker;
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_sha = dataplane_mac;
  (void)!write(fd_, reply, sizeof reply);
}

unsigned ExceptionPort::poll(const Tables& tables, rte_mempool* pool, rte_ring* to_worker) {
  unsigned moved = 0;
  // Dataplane -> kernel: the IP packet in an Ethernet frame to the TAP's MAC.
  rte_mbuf* pkts[32];
  unsigned n;
  while ((n = rte_ring_sc_dequeue_burst(punt_, reinterpret_cast<void**>(pkts), 32, nullptr)) > 0) {
    for (unsigned i = 0; i < n; i++) {
      rte_mbuf* m = pkts[i];
      rte_pktmbuf_adj(m, meta(m).l2_len);
      auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
      if (eth && m->nb_segs == 1) {
        eth->dst_addr = kernel_mac_;
        eth->src_addr = dataplane_mac;
        eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
        if (write(fd_, eth, rte_pktmbuf_data_len(m)) > 0) to_kernel_++;
      }
      rte_pktmbuf_free(m);
    }
    moved += n;
  }
  // Kernel -> dataplane: ARP is answered here; IPv4 from a tunnel endpoint of ours is routed
  // in that tunnel's underlay tenant.
  uint8_t frame[9216];
  ssize_t len;
  while ((len = read(fd_, frame, sizeof frame)) > 0) {
    if (size_t(len) < sizeof(rte_ether_hdr)) continue;
    const auto* eth = reinterpret_cast<const rte_ether_hdr*>(frame);
    if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
      answer_arp(frame, size_t(len));
      continue;
    }
    if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || size_t(len) < sizeof(rte_ether_hdr) + 20) continue;
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
    uint32_t src = rte_be_to_cpu_32(ip->src_addr);
    const InterfaceEntry* tunnel = nullptr;
    for (const auto& f : tables.interfaces)
      if (f.uid && f.tunnel && f.local == src) tunnel = &f;
    uint16_t tenant = tunnel ? tunnel->underlay : 0;
    if (!tunnel && daemon_from(tables, frame, size_t(len), src, tenant) == nullptr)
      continue;  // neither IKE from a tunnel endpoint nor BGP or BFD from an interface of ours: not ours to send
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (!m) continue;
    size_t ip_len = size_t(len) - sizeof(rte_ether_hdr);
    auto* at = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(ip_len)));
    if (!at) {
      rte_pktmbuf_free(m);
      continue;
    }
    memcpy(at, ip, ip_len);
    PacketMeta& pm = meta(m);
    pm = PacketMeta{};
    pm.tenant = tenant;
    pm.flags = meta_local;
    pm.handoff = Handoff::inject;
    if (rte_ring_mp_enqueue(to_worker, m) != 0)
      rte_pktmbuf_free(m);
    else
      from_kernel_++;
    moved++;
  }
  return moved;
}

}  // namespace medix::dp
