"""ESP for the packet tests: build what a peer sends (inbound) and check what medix-dp sends
(outbound) by decrypting it. Used by the ESP cases' gen.py and by run.py.

Inbound packets are encrypted by scapy's ESP (scapy.layers.ipsec.SecurityAssociation). Scapy
leaves the high ESN bits out of the HMAC of non-AEAD ciphers (RFC 4303 2.2.1 puts them in), so
for AES-CBC with ESN the ICV is Python's hmac over ESP || seq_hi; GCM puts them in its AAD
(RFC 4106 5) in scapy as well.

Outbound frames cannot be compared byte for byte (CBC IVs are unpredictable), so gen.py
records what each must decrypt to (`EspCase.expect_esp`), and run.py decrypts what came out
with the SA's keys and compares a *plain rendering* of both sides (`plain_frame`): the L2
header, the outer IPv4 header with ID 0, the UDP header if any, SPI and sequence number,
then the inner packet; IV, padding and ICV are checked on the way (`normalize`), not shown.
Two decryptions must agree: scapy's, which also verifies the ICV, and one with the
`cryptography` primitives directly, which yields the padding and next header bytes.

With `EspCase.tshark(...)`, run.py also has tshark (Wireshark's dissector, Debian package
`tshark`) decrypt the outbound SAs named, and its inner packets and ICV verdicts must match.
Wireshark 4.0's ESP SA table has no ESN field, so only SAs without ESN can go to it.
"""

import base64
import copy
import hashlib
import hmac
import json
import os
import shutil
import struct
import subprocess

from scapy.all import IP, UDP, Raw, raw
from scapy.layers.ipsec import ESP, SecurityAssociation, _ESPPlain

CIPHERS = {  # config name: scapy name, key bytes (GCM: + 4-byte salt), IV, block, tshark name
    "AES_GCM_128": dict(scapy="AES-GCM", key=20, iv=8, block=4, aead=True,
                        tshark="AES-GCM with 16 octet ICV [RFC4106]"),
    "AES_GCM_256": dict(scapy="AES-GCM", key=36, iv=8, block=4, aead=True,
                        tshark="AES-GCM with 16 octet ICV [RFC4106]"),
    "AES_CBC_128": dict(scapy="AES-CBC", key=16, iv=16, block=16, aead=False,
                        tshark="AES-CBC [RFC3602]"),
    "AES_CBC_256": dict(scapy="AES-CBC", key=32, iv=16, block=16, aead=False,
                        tshark="AES-CBC [RFC3602]"),
}
INTEGRITY = {
    "HMAC_SHA256_128": dict(scapy="SHA2-256-128", key=32, icv=16, hash=hashlib.sha256,
                            tshark="HMAC-SHA-256-128 [RFC4868]"),
    "HMAC_SHA1_96": dict(scapy="HMAC-SHA1-96", key=20, icv=12, hash=hashlib.sha1,
                         tshark="HMAC-SHA-1-96 [RFC2404]"),
}
NAT_T_PORT = 4500
IPPROTO_IPIP = 4


class Sa:
    """One SA with its tunnel's endpoints: src/dst are the outer addresses of its packets
    (inbound: remote to local; outbound: local to remote)."""

    def __init__(self, spi, inbound, cipher, cipher_key, integrity, integrity_key, esn, src, dst,
                 udp_port, tunnel):
        self.spi, self.inbound, self.esn = spi, inbound, esn
        self.cipher, self.cipher_key = cipher, cipher_key
        self.integrity, self.integrity_key = integrity, integrity_key
        self.src, self.dst, self.udp_port, self.tunnel = src, dst, udp_port, tunnel
        c = CIPHERS[cipher]
        self.aead, self.iv_len, self.block = c["aead"], c["iv"], c["block"]
        assert len(cipher_key) == c["key"], f"SA {spi}: cipher key of {len(cipher_key)} bytes"
        if self.aead:
            assert not integrity, f"SA {spi}: GCM takes no integrity algorithm"
            self.icv_len = 16
        else:
            i = INTEGRITY[integrity]
            assert len(integrity_key) == i["key"], f"SA {spi}: integrity key length"
            self.icv_len = i["icv"]

    @classmethod
    def from_config(cls, sa, tunnel):
        b64 = lambda s: base64.b64decode(s) if s else b""
        local, remote = tunnel["local_address"], tunnel["remote_address"]
        inbound = bool(sa.get("inbound"))
        return cls(sa["spi"], inbound, sa["cipher"], b64(sa.get("cipher_key")),
                   sa.get("integrity", ""), b64(sa.get("integrity_key")), bool(sa.get("esn")),
                   remote if inbound else local, local if inbound else remote,
                   tunnel.get("encap_udp_port", 0), tunnel["name"])

    def to_json(self):
        d = dict(self.__dict__)
        d["cipher_key"], d["integrity_key"] = self.cipher_key.hex(), self.integrity_key.hex()
        return {k: d[k] for k in ("spi", "inbound", "cipher", "cipher_key", "integrity",
                                  "integrity_key", "esn", "src", "dst", "udp_port", "tunnel")}

    @classmethod
    def from_json(cls, d):
        return cls(d["spi"], d["inbound"], d["cipher"], bytes.fromhex(d["cipher_key"]),
                   d["integrity"], bytes.fromhex(d["integrity_key"]), d["esn"], d["src"],
                   d["dst"], d["udp_port"], d["tunnel"])

    def scapy(self, seq_hi=0, auth=True):
        kw = dict(spi=self.spi, crypt_algo=CIPHERS[self.cipher]["scapy"], crypt_key=self.cipher_key,
                  tunnel_header=IP(src=self.src, dst=self.dst), esn_en=self.esn, esn=seq_hi)
        if self.integrity and auth:
            kw.update(auth_algo=INTEGRITY[self.integrity]["scapy"], auth_key=self.integrity_key)
        return SecurityAssociation(ESP, **kw)

    def hmac_icv(self, esp_without_icv, seq_hi):
        """RFC 4303 2.2.1 / 3.3.2.1: the ICV over the ESP packet, with ESN the high sequence bits
        appended."""
        i = INTEGRITY[self.integrity]
        msg = esp_without_icv + (struct.pack("!L", seq_hi) if self.esn else b"")
        return hmac.new(self.integrity_key, msg, i["hash"]).digest()[:i["icv"]]

    def default_iv(self, seq):
        """Deterministic IVs keep the generated pcaps reproducible."""
        return hashlib.sha256(struct.pack("!LQ", self.spi, seq)).digest()[:self.iv_len]

    # --- what the peer sends ---------------------------------------------------------------

    def with_spi(self, spi):
        """The same keys under another SPI (packets for SPIs medix-dp does not know)."""
        other = copy.copy(self)
        other.spi = spi
        return other

    def encrypt(self, inner, seq, iv=None, padding=None, padlen=None, nh=IPPROTO_IPIP, tfc=b"",
                bad_icv=False, crafted=False):
        """The ESP packet (SPI .. ICV) that carries `inner` (bytes of an IPv4 packet) with
        64-bit sequence number `seq`. Normal packets go through scapy's public
        SecurityAssociation.encrypt; a packet with a doctored trailer (padding, padlen, nh,
        TFC padding RFC 4303 2.7) or payload (`crafted`: any bytes) is built from scapy's
        _ESPPlain and encrypted by the same scapy cipher code. The ICV is always right for
        what is sent (Python's hmac where scapy leaves seq_hi out); `bad_icv` flips its last
        bit."""
        hi, lo = seq >> 32, seq & 0xFFFFFFFF
        iv = iv if iv is not None else self.default_iv(seq)
        manual_icv = self.integrity and self.esn  # scapy leaves seq_hi out of the HMAC
        sa = self.scapy(seq_hi=hi, auth=not manual_icv)
        # scapy's encrypt() takes sequence number 0 for "the SA's next one": 0 goes crafted
        if padding is None and padlen is None and nh == IPPROTO_IPIP and not tfc and not crafted \
                and lo != 0:
            pkt = IP(inner)
            assert raw(pkt) == bytes(inner), "scapy does not rebuild the inner packet exactly"
            esp = raw(sa.encrypt(pkt, seq_num=lo, iv=iv, esn_en=self.esn, esn=hi)[ESP])
        else:
            plain = _ESPPlain(spi=self.spi, seq=lo, iv=iv, data=bytes(inner) + tfc, nh=nh)
            if padding is None:
                plain = sa.crypt_algo.pad(plain)
                padding = plain.padding
            plain.padding = padding
            plain.padlen = len(padding) if padlen is None else padlen
            enc = sa.crypt_algo.encrypt(sa, plain, sa.crypt_key, sa.crypt_icv_size,
                                        esn_en=self.esn, esn=hi)
            if not manual_icv:
                sa.auth_algo.sign(enc, sa.auth_key)
            esp = raw(enc)
        assert struct.unpack("!LL", esp[:8]) == (self.spi, lo), "scapy wrote another SPI/seq"
        if manual_icv:
            esp += self.hmac_icv(esp, hi)
        if bad_icv:
            esp = esp[:-1] + bytes([esp[-1] ^ 1])
        return esp

    def outer(self, esp, tos=0, flags=0, ttl=64, id=1, frag=0, udp_sport=NAT_T_PORT,
              udp_chksum=0, dst=None, src=None, options=()):
        """The outer IPv4 packet for an ESP packet (bytes), in UDP when the tunnel encapsulates
        (RFC 3948: checksum 0, length right; scapy's own nat_t_header leaves the length 8)."""
        ip = IP(src=src or self.src, dst=dst or self.dst, tos=tos, flags=flags, ttl=ttl, id=id,
                frag=frag, options=list(options))
        if self.udp_port:
            return bytes(ip / UDP(sport=udp_sport, dport=NAT_T_PORT, chksum=udp_chksum) / Raw(esp))
        return bytes(ip / ESP(esp))

    # --- what medix-dp sends ---------------------------------------------------------------

    def decrypt(self, esp, seq_hi):
        """(inner, problems) for an ESP packet of this SA: scapy verifies the ICV (for CBC
        with ESN, Python's hmac with seq_hi) and decrypts; the same ciphertext decrypted with
        `cryptography` directly gives the padding and next header, which are checked."""
        problems = []
        payload_len = len(esp) - 8 - self.iv_len - self.icv_len
        if payload_len <= 0 or payload_len % self.block:
            return None, [f"ciphertext of {payload_len} bytes is not a positive multiple of "
                          f"{self.block}"]
        if self.integrity and self.esn:
            if self.hmac_icv(esp[:-self.icv_len], seq_hi) != esp[-self.icv_len:]:
                return None, ["ICV wrong (HMAC over ESP || seq_hi, RFC 4303 2.2.1)"]
            verify = False
        else:
            verify = True
        sa = self.scapy(seq_hi=seq_hi)
        pkt = IP(src=self.src, dst=self.dst, proto=50) / ESP(esp)
        pkt = IP(raw(pkt))
        try:
            if verify:
                sa.check_spi(pkt)
                sa.auth_algo.verify(pkt[ESP], sa.auth_key)
            plain = sa.crypt_algo.decrypt(sa, pkt[ESP], sa.crypt_key,
                                          sa.crypt_icv_size or sa.crypt_algo.icv_size
                                          or sa.auth_algo.icv_size,
                                          esn_en=self.esn, esn=seq_hi)
        except Exception as e:  # IPSecIntegrityError, or a cipher error
            return None, [f"scapy cannot decrypt it: {type(e).__name__}: {e} (ICV wrong?)"]
        inner = bytes(plain.data)
        full = self._plaintext(esp, seq_hi)
        padlen, nh = full[-2], full[-1]
        if padlen + 2 > len(full):
            problems.append(f"pad length {padlen} beyond the payload")
        else:
            padding = full[len(full) - 2 - padlen:-2]
            if padding != bytes(range(1, padlen + 1)):
                problems.append(f"padding {padding.hex()} is not 1, 2, 3, ... (RFC 4303 2.4)")
            if full[:len(full) - 2 - padlen] != inner:
                problems.append("scapy and cryptography decrypt it differently (test bug)")
        if nh != IPPROTO_IPIP:
            problems.append(f"next header {nh}, not 4 (IPv4)")
        return inner, problems

    def _plaintext(self, esp, seq_hi):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        iv = esp[8:8 + self.iv_len]
        body = esp[8 + self.iv_len:len(esp) - self.icv_len]
        if self.aead:
            key, salt = self.cipher_key[:-4], self.cipher_key[-4:]
            aad = esp[:4] + (struct.pack("!L", seq_hi) if self.esn else b"") + esp[4:8]
            return AESGCM(key).decrypt(salt + iv, body + esp[-self.icv_len:], aad)
        d = Cipher(algorithms.AES(self.cipher_key), modes.CBC(iv)).decryptor()
        return d.update(body) + d.finalize()


def plain_frame(l2, src, dst, tos, df, ttl, udp, spi, seq, inner):
    """The plain rendering of an ESP frame both sides are compared in: `l2` (bytes), the outer
    IPv4 header (ID 0, no options), the UDP header (sport, dport, checksum) if any, SPI and
    the low 32 bits of the sequence number, then the inner packet."""
    ip = IP(src=src, dst=dst, tos=tos, id=0, flags="DF" if df else 0, ttl=ttl,
            proto=17 if udp else 50)
    body = Raw(struct.pack("!LL", spi, seq & 0xFFFFFFFF) + bytes(inner))
    if udp:
        sport, dport, chksum = udp
        return bytes(l2) + bytes(ip / UDP(sport=sport, dport=dport, chksum=chksum) / body)
    return bytes(l2) + bytes(ip / body)


def split_l2(frame):
    """(L2 header length, ethertype) of a frame with up to two tags."""
    off = 12
    etype = struct.unpack("!H", frame[off:off + 2])[0]
    while etype in (0x8100, 0x88A8) and len(frame) >= off + 6:
        off += 4
        etype = struct.unpack("!H", frame[off:off + 2])[0]
    return off + 2, etype


def esp_offset(frame):
    """Where ESP starts in a frame medix-dp sent, or None if it carries no ESP: IPv4 protocol
    50, or UDP to or from 4500 with at least 8 bytes that are no non-ESP marker."""
    if len(frame) < 14:
        return None
    l2, etype = split_l2(frame)
    if etype != 0x0800 or len(frame) < l2 + 20:
        return None
    ihl = (frame[l2] & 0x0F) * 4
    proto = frame[l2 + 9]
    if proto == 50:
        return l2 + ihl
    if proto == 17 and len(frame) >= l2 + ihl + 16:
        sport, dport = struct.unpack("!HH", frame[l2 + ihl:l2 + ihl + 4])
        if NAT_T_PORT in (sport, dport) and frame[l2 + ihl + 8:l2 + ihl + 12] != b"\0\0\0\0":
            return l2 + ihl + 8
    return None


# --- gen.py side -------------------------------------------------------------------------------

class EspCase:
    """ESP on top of a medixpkt.Case: the SAs come from config.json (`tunnels`, `sas`)."""

    def __init__(self, case):
        self.c = case
        tunnels = {t["name"]: t for t in case.config.get("tunnels", [])}
        self.tunnels = tunnels
        self.sas = [Sa.from_config(s, tunnels[s["tunnel"]]) for s in case.config.get("sas", [])]
        self.expects = {}   # port: [plain frame]
        self.streams = {}   # port: [stream]
        self.tshark_spis = []
        self.tshark_expect = []  # [spi, seq, inner hex]

    def sa(self, tunnel, inbound, spi=None):
        hits = [s for s in self.sas if s.tunnel == tunnel and s.inbound == inbound
                and (spi is None or s.spi == spi)]
        assert len(hits) == 1, f"{len(hits)} SAs for {tunnel} inbound={inbound} spi={spi}"
        return hits[0]

    def send_esp(self, iface, src_mac, sa, inner, seq, outer_kw=None, **enc):
        """Feeds `inner`, encrypted with inbound `sa` at sequence number `seq`, into `iface`."""
        esp = sa.encrypt(bytes(inner), seq, **enc)
        self.c.send(iface, src_mac, sa.outer(esp, **(outer_kw or {})))
        return esp

    def expect_esp(self, iface, dst_mac, sa, seq, inner, tos, df, ttl=64, stream="esp"):
        """Expects out of `iface` an ESP frame of outbound `sa` with sequence number `seq`
        that decrypts to `inner` (bytes), in an outer header with this TOS, DF and TTL.
        Sequence numbers are part of the comparison: feed an SA from one ingress interface."""
        i = self.c.iface(iface)
        from medixpkt import l2
        hdr = l2(dst_mac, i["mac"], i.get("vlan", 0), i.get("inner_vlan", 0), 0x0800)
        udp = (NAT_T_PORT, sa.udp_port, 0) if sa.udp_port else None
        port = self.c.port_of(iface)
        self.expects.setdefault(port, []).append(
            plain_frame(hdr, sa.src, sa.dst, tos, df, ttl, udp, sa.spi, seq, inner))
        self.streams.setdefault(port, []).append(f"{self.c.last_in}/{stream}:{sa.spi:#x}")
        if sa.spi in self.tshark_spis:
            self.tshark_expect.append([sa.spi, seq, bytes(inner).hex()])

    def tshark(self, *sas):
        """Has tshark decrypt these outbound SAs too (call before their expect_esp)."""
        for sa in sas:
            assert not sa.inbound and not sa.esn, "tshark 4.0 takes outbound SAs without ESN"
            self.tshark_spis.append(sa.spi)

    def write(self):
        """Writes the case (Case.write) and the ESP expectations: expect_esp_<port>.pcap (plain
        frames) and expect_esp.json (outbound SAs, streams, tshark)."""
        from medixpkt import write_pcap
        self.c.write()
        for port in self.c.ports:
            write_pcap(os.path.join(self.c.outdir, f"expect_esp_{port}.pcap"),
                       self.expects.get(port, []))
        spec = {"sas": [s.to_json() for s in self.sas if not s.inbound],
                "streams": {p: self.streams.get(p, []) for p in self.c.ports},
                "tshark": self.tshark_spis, "tshark_expect": self.tshark_expect}
        with open(os.path.join(self.c.outdir, "expect_esp.json"), "w") as f:
            json.dump(spec, f, indent=1)


# --- run.py side -------------------------------------------------------------------------------

class Checker:
    """Turns the ESP frames of each port into plain frames, checking on the way what the plain
    rendering does not show. Keeps per-SA state (ESN high bits, IVs seen) across ports."""

    def __init__(self, spec):
        self.sas = {d["spi"]: Sa.from_json(d) for d in spec["sas"]}
        self.last_seq = {}     # spi: 64-bit sequence number of the SA's latest frame
        self.ivs = {}          # spi: set of IVs
        self.ids = set()       # (src, dst, proto, id) of outer packets without DF

    def normalize(self, port, frames):
        """(plain ESP frames, other frames, problems) of the frames out of a port."""
        plain, other, problems = [], [], []
        for n, f in enumerate(frames):
            at = esp_offset(f)
            if at is None:
                other.append(f)
                continue
            p, why = self._one(f, at)
            plain.append(p)
            problems += [f"port {port}: ESP frame {n} (ESP frame #{len(plain) - 1} of the port): "
                         f"{w}" for w in why]
        return plain, other, problems

    def _one(self, f, at):
        why = []
        l2, _ = split_l2(f)
        ip = f[l2:]
        ihl = (ip[0] & 0x0F) * 4
        tot, ident, frag = struct.unpack("!HHH", ip[2:8])
        if ip[0] != 0x45:
            why.append(f"outer version/IHL byte {ip[0]:#x}, expected 0x45")
        if tot != len(ip):
            why.append(f"outer total length {tot}, frame carries {len(ip)} bytes of IP")
        if sum(struct.unpack(f"!{ihl // 2}H", ip[:ihl])) % 0xFFFF != 0:
            why.append("outer header checksum wrong")
        if frag & 0x3FFF:
            why.append(f"outer packet is a fragment (flags/offset {frag:#x}): not decrypted")
            return f, why
        df = bool(frag & 0x4000)
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        if not df:
            key = (src, dst, ip[9], ident)
            if key in self.ids:
                why.append(f"outer ID {ident} repeats without DF (RFC 6864)")
            self.ids.add(key)
        udp = None
        if ip[9] == 17:
            sport, dport, ulen, uck = struct.unpack("!HHHH", ip[ihl:ihl + 8])
            if ulen != tot - ihl:
                why.append(f"UDP length {ulen}, expected {tot - ihl}")
            udp = (sport, dport, uck)
        esp = f[at:l2 + tot]
        if len(esp) < 8:
            why.append(f"ESP of {len(esp)} bytes: no SPI and sequence number")
            return f, why
        spi, lo = struct.unpack("!LL", esp[:8])
        sa = self.sas.get(spi)
        if sa is None:
            why.append(f"SPI {spi:#x} is no outbound SA of config.json")
            return f, why
        # RFC 4303 A2 in its simplest form: the high bits follow the low ones round.
        last = self.last_seq.get(spi, 0)
        hi = last >> 32
        if sa.esn and lo < (last & 0xFFFFFFFF) and (last & 0xFFFFFFFF) - lo > 0x80000000:
            hi += 1
        seq = (hi << 32) | lo
        self.last_seq[spi] = seq
        iv = esp[8:8 + sa.iv_len]
        if iv in self.ivs.setdefault(spi, set()):
            why.append(f"IV {iv.hex()} used before in this SA")
        self.ivs[spi].add(iv)
        inner, problems = sa.decrypt(esp, hi)
        why += problems
        if inner is None:
            return f, why
        return plain_frame(f[:l2], src, dst, ip[1], df, ip[8], udp, spi, seq, inner), why


def tshark_problems(pcap, port, spec):
    """tshark decrypts the frames of the SAs in spec["tshark"]; every expected (SPI, sequence)
    of this port's frames must be there with a good ICV and the expected inner packet."""
    spis = set(spec.get("tshark", []))
    sas = {d["spi"]: Sa.from_json(d) for d in spec["sas"] if d["spi"] in spis}
    if not sas:
        return []
    exe = shutil.which("tshark")
    if not exe:
        return ["tshark is not installed (Debian package `tshark`, which scripts/setup should "
                "install): cannot cross-check the outbound ESP with Wireshark's dissector"]
    cmd = [exe, "-r", pcap, "-n", "-o", "esp.enable_encryption_decode:TRUE",
           "-o", "esp.enable_authentication_check:TRUE"]
    for sa in sas.values():
        auth = INTEGRITY[sa.integrity] if sa.integrity else None
        # Wireshark 4.0 esp_sa UAT: protocol, src, dst, SPI, encryption algorithm and key,
        # authentication algorithm and key (no ESN column before 4.2).
        fields = ["IPv4", sa.src, sa.dst, f"0x{sa.spi:08x}", CIPHERS[sa.cipher]["tshark"],
                  "0x" + sa.cipher_key.hex(), auth["tshark"] if auth else "NULL",
                  "0x" + sa.integrity_key.hex() if auth else ""]
        cmd += ["-o", "uat:esp_sa:" + ",".join(f'"{x}"' for x in fields)]
    cmd += ["-T", "fields", "-E", "separator=/t", "-e", "frame.number", "-e", "esp.spi",
            "-e", "esp.sequence", "-e", "esp.icv_good", "-e", "esp.contained_data"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return ["tshark took more than 60 s"]
    if r.returncode != 0:
        return [f"tshark failed ({r.returncode}): {r.stderr.strip()[-500:]}"]
    seen = {}
    for line in r.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < 5 or not cols[1]:
            continue
        spi = int(cols[1], 16)
        if spi in sas:
            seen[(spi, int(cols[2]))] = (cols[0], cols[3], cols[4].replace(":", ""))
    problems = []
    streams = spec["streams"].get(port, [])
    wanted = [e for e in spec["tshark_expect"]
              if any(s.endswith(f":{e[0]:#x}") for s in streams)]
    for spi, seq, inner in wanted:
        got = seen.pop((spi, seq & 0xFFFFFFFF), None)
        if got is None:
            problems.append(f"tshark: no frame of SPI {spi:#x} with sequence {seq}")
        elif got[1] != "1":
            problems.append(f"tshark: frame {got[0]} (SPI {spi:#x}, seq {seq}): ICV not good "
                            f"({got[1] or 'unchecked'})")
        elif got[2] != inner:
            problems.append(f"tshark: frame {got[0]} (SPI {spi:#x}, seq {seq}): inner packet "
                            f"{got[2][:80]}..., expected {inner[:80]}...")
    for (spi, seq), got in sorted(seen.items()):
        if any(s.endswith(f":{spi:#x}") for s in streams):
            problems.append(f"tshark: frame {got[0]}: SPI {spi:#x} seq {seq} not expected")
    return problems
