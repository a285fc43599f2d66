"""The per-algorithm ESP cases (030..034): one algorithm, four tunnels, both directions.

config.json of such a case (hosp's inner side h0 on p1, the carrier underlay c0 on p0 in
VLAN 10, local endpoint 198.51.100.1; clinic on p2 has the same addresses as hosp, so a
packet that leaks into the wrong tenant shows up there):

| tunnel | remote          | inner prefix | encapsulation | ESN | df        | ttl | replay window |
|--------|-----------------|--------------|---------------|-----|-----------|-----|---------------|
| tr     | 198.51.100.11   | 10.11/16     | raw ESP       | no  | DF_COPY   | 64  | 64            |
| tre    | 198.51.100.12   | 10.12/16     | raw ESP       | yes | DF_SET    | 17  | 128           |
| tu     | 198.51.100.13   | 10.13/16     | UDP 4500      | no  | DF_CLEAR  | 64  | 0 (off)       |
| tue    | 198.51.100.14   | 10.14/16     | UDP 4500      | yes | (default) | 255 | 4096          |

Inbound SAs have SPI 1000 + n, outbound 2000 + n (n the remote's last octet).

Inbound: three packets per tunnel, encrypted by scapy (sequence numbers 1, 2, 7), four with
ESN (0xFFFFFFFE, 0xFFFFFFFF, 2^32 and 2^32 + 1: across the wrap, and 2^32 whose low 32 bits
are 0, which is valid with ESN), UDP, TCP and ICMP of sizes that hit every padding length;
each comes out of h0 forwarded (TTL - 1) to the host.
Outbound: three packets per tunnel from the host, of varied DSCP/ECN, DF and size (up to the
tunnel MTU, 1400); each must come out of c0 as ESP with sequence numbers 1, 2, 3, outer
addresses the tunnel's, UDP 4500 -> 4500 with checksum 0 where encapsulated, TOS copied from
the inner packet (DSCP and ECN, RFC 6040 normal mode), DF by the tunnel's mode, TTL the
tunnel's, and decrypt (scapy, and cryptography for padding and next header) to the
forwarded inner packet.
"""

from medixpkt import H1, ICMP, IP, TCP, UDP, Case, Raw, forwarded
from medixesp import EspCase

INBOUND_PAYLOADS = [0, 1, 13, 14, 15, 16, 17, 100, 250, 511, 1000, 1371, 2, 3]
OUTBOUND = [  # (tos, DF, payload): every ECN codepoint, DSCPs, sizes up to 1400 in all
    (0x00, True, 0), (0xB8, False, 3), (0x03, True, 1372),
    (0x01, False, 14), (0x02, True, 29), (0x28, False, 700),
    (0xBA, True, 15), (0x48, True, 255), (0x00, False, 1372),
    (0xFF, False, 16), (0x03, False, 31), (0x01, True, 1000)]


def gw_mac(n):
    return f"02:bb:00:00:00:{n}"


def inbound_inner(n, k, payload, tos):
    src, dst = f"10.{n}.0.5", "10.0.1.10"
    data = bytes((payload * 7 + i) & 0xFF for i in range(payload))
    if k % 3 == 0:
        return IP(src=src, dst=dst, id=100 + k, tos=tos) / UDP(sport=1000 + k, dport=2000) / Raw(data)
    if k % 3 == 1:
        return (IP(src=src, dst=dst, id=100 + k, tos=tos, flags="DF")
                / TCP(sport=40000 + k, dport=443, flags="PA", seq=k, ack=1) / Raw(data))
    return IP(src=src, dst=dst, id=100 + k, tos=tos) / ICMP(type=8, id=k, seq=k) / Raw(data)


def run(gen_file, tshark=False):
    c = Case(gen_file)
    e = EspCase(c)
    names = [t["name"] for t in c.config["tunnels"]]
    k = 0
    for name in names:
        t = e.tunnels[name]
        n = int(t["remote_address"].rsplit(".", 1)[1])
        sa_in = e.sa(name, True)
        seqs = [0xFFFFFFFE, 0xFFFFFFFF, 1 << 32, (1 << 32) + 1] if sa_in.esn else [1, 2, 7]
        for seq in seqs:
            inner = bytes(inbound_inner(n, k, INBOUND_PAYLOADS[k], tos=[0, 0x28, 0xB8][k % 3]))
            e.send_esp("c0", gw_mac(n), sa_in, inner, seq)
            c.expect("h0", H1, forwarded(inner))
            k += 1
    if tshark:
        e.tshark(*[e.sa(name, False) for name in names if not e.sa(name, False).esn])
    k = 0
    for name in names:
        t = e.tunnels[name]
        n = int(t["remote_address"].rsplit(".", 1)[1])
        sa_out = e.sa(name, False)
        for seq in (1, 2, 3):
            tos, df, payload = OUTBOUND[k]
            data = bytes((k + i) & 0xFF for i in range(payload))
            inner = bytes(IP(src="10.0.1.10", dst=f"10.{n}.0.7", id=200 + k, tos=tos,
                             flags="DF" if df else 0, ttl=30)
                          / UDP(sport=3000 + k, dport=4000) / Raw(data))
            assert len(inner) <= 1400
            c.send("h0", H1, inner)
            mode = t.get("df", "DF_COPY")
            outer_df = {"DF_COPY": df, "DF_SET": True, "DF_CLEAR": False}[mode]
            e.expect_esp("c0", gw_mac(n), sa_out, seq, forwarded(inner), tos=tos, df=outer_df,
                         ttl=t.get("ttl", 64))
            k += 1
    e.write()
