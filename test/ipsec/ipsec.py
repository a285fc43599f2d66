#!/usr/bin/python3
"""The driver of the IPsec test (test/ipsec/run.sh builds the namespaces and calls it).

    ipsec.py --env FILE [--only PHASE ...]

FILE is the JSON run.sh writes: the run id, its temp dir, the namespaces, the veth ends that
medix-dp drives, the carrier veth pair and the exception TAP's name. Prints PASS/FAIL lines
(run.sh counts them); every medix-dp it starts is stopped (killed at exit if need be).

Phase "pair" (two IX nodes, one worker each, back to back over a carrier veth):

   a-lan 10.1.0.10 ── a0 ┐                                         ┌ b0 ── b-lan 10.2.0.10
   (tenant hosp-a)       ├ medix-dp A ── a1 ═ carrier ═ b1 ── medix-dp B ┤  (tenant hosp-b)
   peer 192.0.2.2 ─── a2 ┘  198.51.100.1    (veth pair)    198.51.100.2
     + VLAN 20: 203.0.113.2 (raw frames)
   TAP (exception_interface of A) in its own namespace: 198.51.100.1, 192.0.2.1, 203.0.113.1

  1. tunnels t-ab / t-ba with SAs given through the API, in four rounds: AES-GCM-128 and
     AES-CBC-128+HMAC-SHA-256-128, each as raw ESP and as ESP in UDP; ping and kernel TCP
     (sha256-checked) both ways; every IPv4 frame on the carrier is ESP of the round's SPIs.
  2. make-before-break rekeys under two sequenced UDP streams (test/hitless/traffic.py), in
     strongSwan's order; no loss, duplicate or stray datagram; SA counters follow the SPIs.
  3. SA lifetimes (packets outbound, bytes inbound): SOFT_EXPIRED then HARD_EXPIRED events,
     SaCounters.state, sa_expired drops, exactly the allowed packets delivered.
  4. the IKE exception path: UDP 500 and 4500 (non-ESP marker) from a peer, untagged and on
     VLAN 20, reach a socket in the TAP's namespace and its answers go back the same way; IKE
     to node B (no exception_interface) is dropped as ike_no_listener.

Phase "workers" (node A with two workers, --lcores 0@0,1@1,2@1 and qpairs=2):
  5. SAs owned by worker spi % 2, SPI parity flipped by a rekey under six UDP flows: hand-offs
     happen both ways, nothing lost, no handoff_full; ping and TCP too.
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
        os.path.exists("/usr/bin/python3"):
    os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)  # Debian's grpcio

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "api"))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
import keygrep  # noqa: E402
import medixapi as api  # noqa: E402
from medixapi import pb, dp, create, update, delete, route_via, rpc  # noqa: E402

TRAFFIC = os.path.join(ROOT, "test", "hitless", "traffic.py")
XFER = os.path.join(ROOT, "test", "netns", "xfer.py")
TOOLS = os.path.join(HERE, "tools.py")
PY = "/usr/bin/python3"
TOTAL_TIMEOUT = float(os.environ.get("IPSEC_TIMEOUT", 240))
TCP_MIB = float(os.environ.get("IPSEC_TCP_MIB", 3))
PPS = int(os.environ.get("IPSEC_PPS", 2000))
# Self-check: rekeys in the wrong order (old inbound SA deleted before the peer switched):
# the rekey test must then FAIL (lost datagrams, esp_unknown_spi).
BREAK = bool(os.environ.get("IPSEC_BREAK"))

A_LAN, B_LAN = "10.1.0", "10.2.0"
A_UL, B_UL = "198.51.100.1", "198.51.100.2"
PEER_U, PEER_V = ("192.0.2.1", "192.0.2.2"), ("203.0.113.1", "203.0.113.2")
UDP_PAYLOAD = 64
INNER_UDP = 20 + 8 + UDP_PAYLOAD  # what an SA counts for one of traffic.py's datagrams

SUITES = {
    "gcm": dict(label="AES-GCM-128", cipher=pb.AES_GCM_128, key=20, integrity=pb.INTEGRITY_UNSPECIFIED, ikey=0),
    "cbc": dict(label="AES-CBC-128+HMAC-SHA-256-128", cipher=pb.AES_CBC_128, key=16,
                integrity=pb.HMAC_SHA256_128, ikey=32),
}


# --- results ----------------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.passed = self.failed = 0
        self.lock = threading.Lock()

    def check(self, ok, name, detail=""):
        with self.lock:
            if ok:
                self.passed += 1
                print("PASS " + name, flush=True)
            else:
                self.failed += 1
                print("FAIL " + name + (": " + str(detail) if detail else ""), flush=True)
        return bool(ok)

    def info(self, text):
        print("     " + text, flush=True)


R = Results()
# Every SA's keys, and what this driver and the programs it runs print: at the end no log or
# error of the suite may hold any of them (test/lib/keygrep.py).
SECRETS = keygrep.Secrets()
OUTPUTS = keygrep.Outputs()


class Abort(Exception):
    """A step without which the rest of the phase means nothing."""


# --- processes in namespaces ----------------------------------------------------------------

_children = []


def ns_cmd(ns, *cmd):
    return ["ip", "netns", "exec", ns, "taskset", "-c", "0"] + [str(c) for c in cmd]


def ns_run(ns, *cmd, timeout=60):
    r = subprocess.run(ns_cmd(ns, *cmd), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def ns_popen(ns, *cmd, stdout=subprocess.DEVNULL):
    p = subprocess.Popen(ns_cmd(ns, *cmd), stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _children.append(p)
    return p


def stop_child(p, sig=signal.SIGTERM, timeout=10):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _children:
        _children.remove(p)


def kill_children():
    for p in list(_children):
        try:
            p.kill()
            p.wait(5)
        except Exception:  # noqa: BLE001
            pass


def ip(*args):
    r = subprocess.run(["ip"] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode:
        raise Abort("ip %s: %s" % (" ".join(map(str, args)), r.stderr.strip()))
    return r.stdout


def wait_file(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def ping(ns, dst, count=5):
    rc, out, _ = ns_run(ns, "ping", "-c", count, "-i", "0.05", "-W", "2", "-q", dst, timeout=30)
    for line in out.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


# --- medix-dp nodes -------------------------------------------------------------------------

class Node:
    seq = 0

    def __init__(self, env, name, lcores, ifaces, config, qpairs=1):
        Node.seq += 1
        self.env, self.name = env, name
        self.prefix = "medix-%s-ipsec-%s%d" % (env["id"], name, Node.seq)
        self.config_path = os.path.join(env["tmp"], "%s-%d.json" % (name, Node.seq))
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)
        SECRETS.add_config(self.config_path)  # any key it held; the file itself is not searched
        eal = ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", self.prefix, "--lcores", lcores]
        for i, iface in enumerate(ifaces):
            eal += ["--vdev", "net_af_packet%d,iface=%s,framecnt=2048%s" % (i, iface, ",qpairs=%d" % qpairs
                                                                            if qpairs > 1 else "")]
        self.log_path = os.path.join(env["tmp"], "medix-dp-%s-%d.log" % (name, Node.seq))
        self.dp = api.Dataplane(env["binary"], eal, ["--config", self.config_path], self.log_path)
        with open(os.path.join(env["tmp"], "dp-pids"), "a") as f:
            f.write("%d %s\n" % (self.dp.pid, self.prefix))
        self.c = None
        self.events = []
        self.watch = None

    def ready(self):
        self.dp.wait_ready(60)
        self.c = api.Client(self.dp.unix_target)
        self.c.wait_ready(10)
        self.watch = self.c.stub.WatchSaEvents(dp.WatchSaEventsRequest())
        threading.Thread(target=self._events, daemon=True).start()
        time.sleep(0.3)  # the stream is open before anything can expire

    def ready_line(self):
        return next((x for x in self.dp.lines if x.startswith("medix-dp: ready")), "")

    def _events(self):
        try:
            for e in self.watch:
                self.events.append(e)
        except Exception:  # noqa: BLE001  (cancelled at the end)
            pass

    def apply(self, ops, what):
        err, res = rpc(self.c.apply, ops, 0, 30)
        if err is not None:
            raise Abort("%s: Apply (%s) refused: %s %s" % (self.name, what, err.code().name, err.details()))
        return res

    def snap(self):
        return Snap(self.c.counters())

    def port_mac(self, port):
        return self.c.get(pb.Port(name=port)).object.port.mac

    def stop(self):
        if self.watch is not None:
            self.watch.cancel()
        if self.c is not None:
            self.c.close()
        return self.dp.stop()


class Snap:
    def __init__(self, cn):
        self.raw = cn
        self.drops = {d.reason: d.packets for d in cn.drops}
        self.sas = {(s.spi, s.inbound): s for s in cn.sas}
        self.tunnels = {t.name: t for t in cn.tunnels}
        self.ifs = {i.name: i for i in cn.interfaces}
        self.ports = {p.name: p for p in cn.ports}

    def sa_packets(self, spi, inbound):
        s = self.sas.get((spi, inbound))
        return s.packets if s else None

    def sa_drops(self, spi, inbound):
        s = self.sas.get((spi, inbound))
        return {d.reason: d.packets for d in s.drops if d.packets} if s else None


def drop_delta(before, after, only=None):
    out = {}
    for k, v in after.drops.items():
        d = v - before.drops.get(k, 0)
        if d and (only is None or k in only):
            out[k] = d
    return out


ESP_DROPS = ("esp_truncated", "esp_unknown_spi", "esp_bad_icv", "esp_replayed", "esp_too_old",
             "esp_bad_padding", "esp_bad_next_header", "esp_selector_mismatch", "esp_ecn", "sa_expired",
             "sa_seq_unreserved", "sa_seq_overflow", "ha_sa_fenced", "tunnel_no_sa", "handoff_full", "no_buffer", "tx_full", "punt_full")


# --- SAs --------------------------------------------------------------------------------------

class Keys:
    """One direction of a CHILD_SA: the SPI and keys both ends are given."""

    def __init__(self, spi, suite):
        self.spi, self.suite = spi, suite
        s = SUITES[suite]
        self.key = os.urandom(s["key"])
        self.ikey = os.urandom(s["ikey"]) if s["ikey"] else b""
        SECRETS.add("SA %#x cipher_key" % spi, self.key)
        SECRETS.add("SA %#x integrity_key" % spi, self.ikey)

    def sa(self, tunnel, inbound, **life):
        s = SUITES[self.suite]
        return pb.SecurityAssociation(spi=self.spi, tunnel=tunnel, inbound=inbound, cipher=s["cipher"],
                                      cipher_key=self.key, integrity=s["integrity"], integrity_key=self.ikey,
                                      replay_window=1024, **life)


class Spis:
    def __init__(self):
        self.n = {}

    def next(self, base, parity=None):
        k = self.n.get(base, 0)
        while True:
            spi = base + k
            k += 1
            if parity is None or spi % 2 == parity:
                self.n[base] = k
                return spi


def tunnel_msg(side, udp_port):
    if side == "a":
        return pb.Tunnel(name="t-ab", tenant="hosp-a", underlay_tenant="carrier", local_address=A_UL,
                         remote_address=B_UL, encap_udp_port=udp_port, local_selectors=[A_LAN + ".0/24"],
                         remote_selectors=[B_LAN + ".0/24"])
    return pb.Tunnel(name="t-ba", tenant="hosp-b", underlay_tenant="carrier", local_address=B_UL,
                     remote_address=A_UL, encap_udp_port=udp_port, local_selectors=[B_LAN + ".0/24"],
                     remote_selectors=[A_LAN + ".0/24"])


class Pair:
    """The tunnel between nodes A and B and the SAs each holds (by SPI, newest last)."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.created = False
        self.udp = 0
        self.ab = []  # Keys of A->B SAs (A outbound, B inbound), oldest first
        self.ba = []

    def install(self, ab, ba, udp_port, a_life=None, b_life=None):
        """Replaces every SA by one pair (and the tunnels' encapsulation) in one transaction per
        node: the setup of a round, not a rekey."""
        a_life, b_life = a_life or {}, b_life or {}
        for node, side, out_k, in_k, life in ((self.a, "a", ab, ba, a_life), (self.b, "b", ba, ab, b_life)):
            t = tunnel_msg(side, udp_port)
            ops = []
            if not self.created:
                ops.append(create(t))
                remote = B_LAN if side == "a" else A_LAN
                ops.append(create(route_via(t.tenant, remote + ".0/24", t.name)))
            elif udp_port != self.udp:
                ops.append(update(t))
            for old in (self.ab if side == "a" else self.ba):
                ops.append(delete(pb.SecurityAssociation(spi=old.spi, tunnel=t.name, inbound=False)))
            for old in (self.ba if side == "a" else self.ab):
                ops.append(delete(pb.SecurityAssociation(spi=old.spi, tunnel=t.name, inbound=True)))
            ops.append(create(in_k.sa(t.name, True, **life.get("in", {}))))
            ops.append(create(out_k.sa(t.name, False, **life.get("out", {}))))
            node.apply(ops, "round setup")
        self.created, self.udp = True, udp_port
        self.ab, self.ba = [ab], [ba]


# --- the carrier's frames -------------------------------------------------------------------

class Sniffer:
    """Counts what crosses the carrier veth pair: frames arriving at each end (so each frame
    once), by kind. IPv4 that is neither ESP nor ESP-in-UDP between the endpoints is `plain`."""

    def __init__(self, ifaces):
        self.socks = []
        for name in ifaces:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            s.bind((name, 3))
            s.settimeout(0.1)
            self.socks.append(s)
        self.counts = {}
        self.runs = {}  # (src, dst) -> [[spi, frames], ...]: the SPIs in the order they crossed
        self.bad = []
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in self.socks]
        for t in self.threads:
            t.start()

    def _count(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    def _run_of(self, src, dst, spi):
        runs = self.runs.setdefault((src, dst), [])
        if runs and runs[-1][0] == spi:
            runs[-1][1] += 1
        else:
            runs.append([spi, 1])

    def _run(self, s):
        while not self.stopping:
            try:
                frame, addr = s.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            etype = struct.unpack("!H", frame[12:14])[0]
            if etype == 0x0806:
                self._count(("arp",))
                continue
            if etype != 0x0800:
                self._count(("other-ethertype", etype))
                continue
            iph = frame[14:]
            ihl = (iph[0] & 15) * 4
            src, dst = socket.inet_ntoa(iph[12:16]), socket.inet_ntoa(iph[16:20])
            proto = iph[9]
            if proto == 50:
                spi = struct.unpack("!I", iph[ihl:ihl + 4])[0]
                self._count(("esp", src, dst, spi))
                self._run_of(src, dst, spi)
            elif proto == 17:
                sport, dport, _, csum = struct.unpack("!HHHH", iph[ihl:ihl + 8])
                body = iph[ihl + 8:ihl + 12]
                if dport == 4500 and body != b"\0\0\0\0" and len(body) == 4:
                    spi = struct.unpack("!I", body)[0]
                    self._count(("udp-esp", src, dst, spi))
                    self._run_of(src, dst, spi)
                    if sport != 4500 or csum != 0:
                        self.bad.append("ESP in UDP %s:%d -> %s:%d checksum %#x" % (src, sport, dst, dport, csum))
                else:
                    self._count(("udp", src, dst, sport, dport))
            else:
                self._count(("plain", src, dst, proto))

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(2)
        self.dropped = 0
        for s in self.socks:
            try:  # PACKET_STATISTICS: tp_packets, tp_drops
                self.dropped += struct.unpack("II", s.getsockopt(263, 6, 8))[1]
            except OSError:
                pass
            s.close()
        if self.dropped:
            R.info("(the carrier capture lost %d frames: counts on the wire below are short)" % self.dropped)
        return self.counts


# --- phase "pair" -----------------------------------------------------------------------------

def config_a(env, with_peer=True, exception=True):
    ports = [{"name": "a0", "device": "net_af_packet0", "promiscuous": True},
             {"name": "a1", "device": "net_af_packet1", "promiscuous": True}]
    tenants = [{"name": "hosp-a", "description": "hospital A"},
               {"name": "carrier", "description": "carrier underlay to node B"}]
    ifs = [{"name": "a-lan", "tenant": "hosp-a", "port": "a0", "addresses": [A_LAN + ".1/24"]},
           {"name": "a-car", "tenant": "carrier", "port": "a1", "addresses": [A_UL + "/24"]}]
    cfg = {"schema_version": 1, "ports": ports, "tenants": tenants, "interfaces": ifs}
    if with_peer:
        ports.append({"name": "a2", "device": "net_af_packet2", "promiscuous": True})
        tenants += [{"name": "carrier-p", "description": "a peer's carrier, untagged"},
                    {"name": "carrier-v", "description": "a peer's carrier on VLAN 20"}]
        ifs += [{"name": "a-peer", "tenant": "carrier-p", "port": "a2", "addresses": [PEER_U[0] + "/24"]},
                {"name": "a-peer20", "tenant": "carrier-v", "port": "a2", "vlan": 20,
                 "addresses": [PEER_V[0] + "/24"]}]
        # The VLAN peer is raw frames in a namespace whose kernel cannot answer tagged ARP.
        cfg["neighbours"] = [{"interface": "a-peer20", "address": PEER_V[1], "mac": env["mac"]["peer"]}]
        # Tunnels for the IKE peers (no SAs: only the exception path uses their addresses).
        cfg["tunnels"] = [
            {"name": "t-pu", "tenant": "hosp-a", "underlay_tenant": "carrier-p", "local_address": PEER_U[0],
             "remote_address": PEER_U[1], "encap_udp_port": 4500},
            {"name": "t-pv", "tenant": "hosp-a", "underlay_tenant": "carrier-v", "local_address": PEER_V[0],
             "remote_address": PEER_V[1]}]
    if exception:
        cfg["settings"] = {"exception_interface": env["tap"]}
    return cfg


def config_b(env):
    return {"schema_version": 1,
            "ports": [{"name": "b0", "device": "net_af_packet0", "promiscuous": True},
                      {"name": "b1", "device": "net_af_packet1", "promiscuous": True}],
            "tenants": [{"name": "hosp-b", "description": "hospital B"},
                        {"name": "carrier", "description": "carrier underlay to node A"}],
            "interfaces": [{"name": "b-lan", "tenant": "hosp-b", "port": "b0", "addresses": [B_LAN + ".1/24"]},
                           {"name": "b-car", "tenant": "carrier", "port": "b1", "addresses": [B_UL + "/24"]}]}


class Tcp:
    """xfer.py servers on both hosts; transfers both ways at once, sha256 compared."""

    def __init__(self, env):
        self.env = env
        self.servers = []
        for side, addr in (("a", A_LAN + ".10"), ("b", B_LAN + ".10")):
            log = os.path.join(env["tmp"], "serve-%s.log" % side)
            self.servers.append(ns_popen(env["ns"][side], PY, XFER, "serve", addr, 7001, log))
        time.sleep(0.3)

    def both_ways(self, tag, mib=None):
        mib = mib or TCP_MIB
        procs = {}
        for side, dst in (("a", B_LAN + ".10"), ("b", A_LAN + ".10")):
            procs[side] = ns_popen(self.env["ns"][side], "timeout", 60, PY, XFER, "send", dst, 7001,
                                   "%s-%s" % (tag, side), mib, stdout=subprocess.PIPE)
        out = {}
        for side, p in procs.items():
            text = p.communicate(timeout=90)[0].decode(errors="replace")
            _children.remove(p)
            try:
                out[side] = json.loads(text.strip().splitlines()[-1])
            except (ValueError, IndexError):
                out[side] = {"error": text.strip()[-300:] or "exit %d" % p.returncode}
        return out

    def stop(self):
        for p in self.servers:
            stop_child(p, signal.SIGKILL)


def check_tcp(res, what):
    for side, peer in (("a", "b"), ("b", "a")):
        r = res.get(side, {})
        ok = r.get("sha256") and r.get("sha256") == r.get("server_sha256") and r.get("bytes", 0) > TCP_MIB * 1e6
        R.check(ok, "%s: TCP %s->%s, %.1f MiB, sha256 equal at both ends (%s Mbit/s)"
                % (what, side.upper(), peer.upper(), TCP_MIB, r.get("mbit_s")), json.dumps(r)[:300])


def phase_pair(env):
    a = Node(env, "A", "0@0,1@1", [env["rif"]["a"], env["carrier"]["a"], env["rif"]["peer"]], config_a(env))
    b = Node(env, "B", "0@0,1@1", [env["rif"]["b"], env["carrier"]["b"]], config_b(env))
    nodes = [a, b]
    tcp = listener = None
    try:
        for n in nodes:
            try:
                n.ready()
            except RuntimeError as e:
                R.check(False, "medix-dp %s starts" % n.name, str(e))
                raise Abort("no medix-dp")
        R.check(True, "two medix-dp nodes ready (A: %s; B: %s)" % (a.ready_line(), b.ready_line()))
        listener = ike_setup(env, a)
        tcp = Tcp(env)
        pair = Pair(a, b)
        spis = Spis()
        rounds(env, pair, spis, tcp)
        rekeys(env, pair, spis)
        lifetimes(env, pair, spis)
        ike(env, a, b, listener)
    except Abort as e:
        R.check(False, "phase pair: %s" % e)
    finally:
        if tcp:
            tcp.stop()
        if listener:
            stop_child(listener["proc"], signal.SIGKILL)
        for n in nodes:
            rc, killed = n.stop()
            R.check(rc == 0 and not killed, "medix-dp %s exits 0 on SIGTERM" % n.name,
                    "status %s%s" % (rc, ", killed" if killed else ""))
        for n in nodes:
            for line in n.dp.lines:
                if "ERROR" in line or "error" in line.lower() and "0 error" not in line.lower():
                    R.info("%s log: %s" % (n.name, line[:200]))


def rounds(env, pair, spis, tcp):
    a, b = pair.a, pair.b
    carrier = [env["carrier"]["a"], env["carrier"]["b"]]
    for suite, udp in (("gcm", 0), ("gcm", 4500), ("cbc", 0), ("cbc", 4500)):
        what = "%s, %s" % (SUITES[suite]["label"], "ESP in UDP 4500" if udp else "raw ESP")
        ab, ba = Keys(spis.next(0x20000), suite), Keys(spis.next(0x10000), suite)
        before = {n.name: n.snap() for n in (a, b)}
        pair.install(ab, ba, udp)
        R.check(True, "%s: tunnels and SAs through the API (A->B SPI %#x, B->A SPI %#x)" % (what, ab.spi, ba.spi))
        api_reads(what, pair, udp)
        sniff = Sniffer(carrier)
        n_ab = ping(env["ns"]["a"], B_LAN + ".10")
        n_ba = ping(env["ns"]["b"], A_LAN + ".10")
        R.check(n_ab == 5 and n_ba == 5, "%s: ping A->B %d/5, B->A %d/5" % (what, n_ab, n_ba))
        res = tcp.both_ways(suite + str(udp))
        time.sleep(0.3)
        counts = sniff.stop()
        check_tcp(res, what)
        after = {n.name: n.snap() for n in (a, b)}
        kind = "udp-esp" if udp else "esp"
        on_wire = {k: v for k, v in counts.items() if k[0] in ("esp", "udp-esp")}
        want = {(kind, A_UL, B_UL, ab.spi), (kind, B_UL, A_UL, ba.spi)}
        stray = {k: v for k, v in counts.items() if k[0] not in ("esp", "udp-esp", "arp")}
        R.check(set(on_wire) == want and not stray and not sniff.bad and min(on_wire.values() or [0]) > 100,
                "%s: on the carrier only %s with SPIs %#x/%#x (%s frames), no plain IPv4"
                % (what, "ESP in UDP 4500->4500, checksum 0" if udp else "ESP (protocol 50)", ab.spi, ba.spi,
                   "/".join(str(on_wire.get(k, 0)) for k in sorted(want, key=lambda k: k[1]))),
                "seen %s; stray %s; %s" % (on_wire, stray, sniff.bad[:3]))
        sa = {"A out": after["A"].sas.get((ab.spi, False)), "B in": after["B"].sas.get((ab.spi, True)),
              "B out": after["B"].sas.get((ba.spi, False)), "A in": after["A"].sas.get((ba.spi, True))}
        missing = [k for k, v in sa.items() if v is None]
        if missing:
            R.check(False, "%s: GetCounters reports the 4 SAs (sas[])" % what,
                    "no entry for %s; sas[] holds %d entries" % (missing, len(after["A"].sas) + len(after["B"].sas)))
        else:
            sa_checks(what, sa, on_wire, kind, ab, ba)
        for n in (a, b):
            d = drop_delta(before[n.name], after[n.name], ESP_DROPS)
            R.check(not d, "%s: node %s: no ESP-related drops (%s)" % (what, n.name, ", ".join(ESP_DROPS[:6]) + ", ..."),
                    str(d))
        t_a, t_b = after["A"].tunnels.get("t-ab"), after["B"].tunnels.get("t-ba")
        tb_a, tb_b = before["A"].tunnels.get("t-ab"), before["B"].tunnels.get("t-ba")
        wire_ab = on_wire.get((kind, A_UL, B_UL, ab.spi), 0)
        if t_a and t_b:
            d_tx_a = t_a.tx_packets - (tb_a.tx_packets if tb_a else 0)
            d_rx_b = t_b.rx_packets - (tb_b.rx_packets if tb_b else 0)
            R.check(d_tx_a == wire_ab and 0 < d_rx_b <= d_tx_a,
                    "%s: tunnel counters: t-ab tx %d (= %d ESP frames A->B on the wire), t-ba rx %d"
                    % (what, d_tx_a, wire_ab, d_rx_b))
        else:
            R.check(False, "%s: GetCounters reports the tunnels (tunnels[])" % what,
                    "no entry for t-ab/t-ba; tunnels[] holds %d entries; interfaces[] has t-ab: %s"
                    % (len(after["A"].tunnels) + len(after["B"].tunnels), "t-ab" in after["A"].ifs))
            i_a, i_b = after["A"].ifs.get("t-ab"), after["B"].ifs.get("t-ba")
            if i_a and i_b:
                R.info("(interfaces[] t-ab: tx %d rx %d; t-ba: tx %d rx %d; ESP frames on the wire A->B %d)"
                       % (i_a.tx_packets, i_a.rx_packets, i_b.tx_packets, i_b.rx_packets, wire_ab))


def api_reads(what, pair, udp):
    """What was programmed reads back: List(SA), List(TUNNEL) and Get(SA), keys never returned."""
    for node, tunnel, out_k, in_k in ((pair.a, "t-ab", pair.ab[-1], pair.ba[-1]),
                                      (pair.b, "t-ba", pair.ba[-1], pair.ab[-1])):
        problems = []
        want = {(out_k.spi, False), (in_k.spi, True)}
        err, res = rpc(node.c.list_all, "sa")
        sas = res[0] if res else []
        listed = {(x.spi, x.inbound) for x in sas}
        if err is not None or listed != want or any(x.tunnel != tunnel for x in sas):
            problems.append("List(SA): %s, listed %s" % (api.code_name(err), sorted(listed)))
        if any(x.cipher_key or x.integrity_key for x in sas):
            problems.append("List(SA) returned keys")
        err, res = rpc(node.c.list_all, "tunnel")
        tunnels = {x.name: x for x in (res[0] if res else [])}
        if err is not None or tunnel not in tunnels or tunnels[tunnel].encap_udp_port != udp:
            problems.append("List(TUNNEL): %s, listed %s" % (api.code_name(err), sorted(tunnels)))
        err, got = rpc(node.c.get, pb.SecurityAssociation(spi=in_k.spi, tunnel=tunnel, inbound=True))
        sa = got.object.sa if got else None
        if sa is None or sa.spi != in_k.spi or sa.cipher != SUITES[in_k.suite]["cipher"]:
            problems.append("Get(SA): %s %s" % (api.code_name(err), sa))
        elif sa.cipher_key or sa.integrity_key:
            problems.append("Get(SA) returned keys")
        R.check(not problems, "%s: node %s: List(SA) gives its 2 SAs and Get(SA) the inbound one, without keys; "
                "List(TUNNEL) gives %s, encap_udp_port %d" % (what, node.name, tunnel, udp), "; ".join(problems))


def sa_checks(what, sa, on_wire, kind, ab, ba):
    R.check(all(s.packets > 0 and s.state == dp.SA_ACTIVE for s in sa.values())
            and sa["B in"].packets <= sa["A out"].packets and sa["A in"].packets <= sa["B out"].packets,
            "%s: SA counters: A->B %d encrypted, %d decrypted; B->A %d encrypted, %d decrypted; all active"
            % (what, sa["A out"].packets, sa["B in"].packets, sa["B out"].packets, sa["A in"].packets),
            str({k: (v.packets, v.state) for k, v in sa.items()}))
    now = time.time_ns()
    R.check(sa["A out"].sequence == sa["A out"].packets and sa["B in"].sequence == sa["B in"].packets and
            sa["B out"].sequence == sa["B out"].packets and sa["A in"].sequence == sa["A in"].packets and
            all(0 < now - s.last_used_ns < 30e9 for s in sa.values()) and
            all(s.bytes >= 20 * s.packets for s in sa.values()),
            "%s: SaCounters.sequence = last sent / highest accepted (%d, %d), bytes and last_used_ns set"
            % (what, sa["A out"].sequence, sa["B in"].sequence),
            str({k: (v.packets, v.sequence, v.bytes, (now - v.last_used_ns) / 1e9) for k, v in sa.items()}))
    lost_ab = sa["A out"].packets - sa["B in"].packets
    lost_ba = sa["B out"].packets - sa["A in"].packets
    wire_ab = on_wire.get((kind, A_UL, B_UL, ab.spi), 0)
    wire_ba = on_wire.get((kind, B_UL, A_UL, ba.spi), 0)
    R.check(wire_ab == sa["A out"].packets and wire_ba == sa["B out"].packets,
            "%s: every encrypted packet crossed the carrier once (A %d = wire %d, B %d = wire %d)"
            % (what, sa["A out"].packets, wire_ab, sa["B out"].packets, wire_ba))
    if lost_ab or lost_ba:
        R.info("(%d A->B and %d B->A ESP packets on the wire were not decrypted: af_packet ring or "
               "drop counters)" % (lost_ab, lost_ba))


# --- 2. rekeys under traffic ------------------------------------------------------------------

class Streams:
    """Sequenced UDP streams (test/hitless/traffic.py): senders and receivers per flow."""

    def __init__(self, env, flows, pps, seconds):
        self.env = env
        self.flows = flows  # (name, src side, dst side, dst addr, port)
        self.dir = os.path.join(env["tmp"], "streams-%d" % int(time.monotonic() * 1000))
        os.makedirs(self.dir)
        self.recv, self.send = {}, {}
        for name, _, dst, _, port in flows:
            self.recv[name] = ns_popen(env["ns"][dst], PY, TRAFFIC, "receive", port, "--run-id", port,
                                       "--out", self.path(name, "recv"), "--sent-file", self.path(name, "sent"),
                                       "--ready", self.path(name, "ready"))
        for name, *_ in flows:
            if not wait_file(self.path(name, "ready")):
                raise Abort("traffic receiver %s did not start" % name)
        for name, src, _, addr, port in flows:
            self.send[name] = ns_popen(env["ns"][src], PY, TRAFFIC, "send", addr, port, "--pps", pps,
                                       "--run-id", port, "--max-seconds", seconds, "--out", self.path(name, "sent"))

    def path(self, name, what):
        return os.path.join(self.dir, "%s-%s.json" % (name, what))

    def finish(self):
        for p in self.send.values():
            stop_child(p)
        time.sleep(1.0)  # in flight drains
        for p in self.recv.values():
            stop_child(p)
        out = {}
        for name, *_ in self.flows:
            try:
                with open(self.path(name, "sent")) as f:
                    sent = json.load(f)
                with open(self.path(name, "recv")) as f:
                    recv = json.load(f)
            except (OSError, ValueError) as e:
                out[name] = {"error": str(e)}
                continue
            out[name] = {"sent": sent, "recv": recv}
        return out


def check_streams(res, what):
    total = 0
    for name, r in res.items():
        if "error" in r:
            R.check(False, "%s: stream %s" % (what, name), r["error"])
            continue
        s, v = r["sent"], r["recv"]
        total += s["sent"]
        ok = (s["sent"] > 0 and v.get("missing_count") == 0 and v["distinct"] == s["sent"] and
              v["duplicates"] == 0 and v["foreign"] == 0 and v.get("beyond_expect", 0) == 0)
        R.check(ok, "%s: stream %s: %d sent (%d pps), %d received: %s lost, %d duplicated, %d stray"
                % (what, name, s["sent"], s["pps"], v["received"], v.get("missing_count"), v["duplicates"],
                   v["foreign"] + v.get("beyond_expect", 0)),
                "first missing %s" % v.get("missing", [])[:10] if v.get("missing") else "")
        if v.get("reordered"):
            R.info("(stream %s: %d datagrams after a higher sequence number)" % (name, v["reordered"]))
    return total


def rekey(pair, spis, suite, what, log, a_in_parity=None, a_out_parity=None):
    """One make-before-break rekey of both directions, in strongSwan's order (each node is
    responder for its inbound SA): new inbound SAs on both nodes; then each node's new outbound
    SA (the newest outbound wins: traffic moves); then the old outbound SAs go; the old inbound
    ones last, once nothing can be in flight for them. `log` gets what the counters showed."""
    a, b = pair.a, pair.b
    ab = Keys(spis.next(0x40000, a_out_parity), suite)  # A->B: B's inbound SPI (B chose it)
    ba = Keys(spis.next(0x30000, a_in_parity), suite)
    old_ab, old_ba = pair.ab[-1], pair.ba[-1]
    if BREAK:  # break before make: not hitless
        a.apply([delete(pb.SecurityAssociation(spi=old_ba.spi, tunnel="t-ab", inbound=True))], "broken rekey")
        b.apply([delete(pb.SecurityAssociation(spi=old_ab.spi, tunnel="t-ba", inbound=True))], "broken rekey")
        time.sleep(0.2)
    a.apply([create(ba.sa("t-ab", True))], "rekey: new inbound")
    b.apply([create(ab.sa("t-ba", True))], "rekey: new inbound")
    time.sleep(0.3)
    a.apply([create(ab.sa("t-ab", False))], "rekey: new outbound")
    b.apply([create(ba.sa("t-ba", False))], "rekey: new outbound")
    pair.ab.append(ab)
    pair.ba.append(ba)
    time.sleep(0.6)
    s1 = {"A": a.snap(), "B": b.snap()}
    time.sleep(0.4)
    s2 = {"A": a.snap(), "B": b.snap()}
    entry = {"what": what, "new": (ab.spi, ba.spi), "old": (old_ab.spi, old_ba.spi)}
    # The new SAs carry the traffic; the old outbound SAs no longer move.
    entry["new_moving"] = all(
        (s2[n].sa_packets(spi, inb) or 0) > (s1[n].sa_packets(spi, inb) or 0)
        for n, spi, inb in (("A", ab.spi, False), ("B", ab.spi, True), ("B", ba.spi, False), ("A", ba.spi, True)))
    entry["old_still"] = all(
        s1[n].sa_packets(spi, inb) is not None and s2[n].sa_packets(spi, inb) == s1[n].sa_packets(spi, inb)
        for n, spi, inb in (("A", old_ab.spi, False), ("B", old_ab.spi, True), ("B", old_ba.spi, False),
                            ("A", old_ba.spi, True)))
    a.apply([delete(pb.SecurityAssociation(spi=old_ab.spi, tunnel="t-ab", inbound=False))], "rekey: old outbound")
    b.apply([delete(pb.SecurityAssociation(spi=old_ba.spi, tunnel="t-ba", inbound=False))], "rekey: old outbound")
    time.sleep(0.3)
    s3 = {"A": a.snap(), "B": b.snap()}
    entry["old_in_final"] = {"B": s3["B"].sa_packets(old_ab.spi, True), "A": s3["A"].sa_packets(old_ba.spi, True)}
    entry["old_out_final"] = {"A": s2["A"].sa_packets(old_ab.spi, False), "B": s2["B"].sa_packets(old_ba.spi, False)}
    if not BREAK:
        a.apply([delete(pb.SecurityAssociation(spi=old_ba.spi, tunnel="t-ab", inbound=True))], "rekey: old inbound")
        b.apply([delete(pb.SecurityAssociation(spi=old_ab.spi, tunnel="t-ba", inbound=True))], "rekey: old inbound")
    pair.ab.remove(old_ab)
    pair.ba.remove(old_ba)
    log.append(entry)
    return entry


def rekeys(env, pair, spis, n=5):
    what = "rekey under traffic"
    a, b = pair.a, pair.b
    # Start from a fresh pair so the sums below cover every packet of the streams.
    suite = "gcm"
    pair.install(Keys(spis.next(0x40000), suite), Keys(spis.next(0x30000), suite), pair.udp)
    before = {"A": a.snap(), "B": b.snap()}
    first = (pair.ab[0].spi, pair.ba[0].spi)
    flows = [("A->B", "a", "b", B_LAN + ".10", 6001), ("B->A", "b", "a", A_LAN + ".10", 6002)]
    sniff = Sniffer([env["carrier"]["a"], env["carrier"]["b"]])
    streams = Streams(env, flows, PPS, 60)
    log = []
    try:
        time.sleep(1.5)
        for k in range(n):
            suite = "cbc" if suite == "gcm" else "gcm"
            rekey(pair, spis, suite, "rekey %d" % (k + 1), log)
            time.sleep(0.3)
        time.sleep(1.0)
    finally:
        res = streams.finish()
        sniff.stop()
    time.sleep(0.2)
    after = {"A": a.snap(), "B": b.snap()}
    check_streams(res, what)
    R.info("%d rekeys (alternating AES-GCM-128 and AES-CBC-128+HMAC-SHA-256), SPIs A->B %s, B->A %s"
           % (len(log), " ".join("%#x" % s for s in [first[0]] + [e["new"][0] for e in log]),
              " ".join("%#x" % s for s in [first[1]] + [e["new"][1] for e in log])))
    R.check(len(log) == n and all(e["new_moving"] for e in log),
            "%s: after each switch the new SAs carry the traffic (4 SA counters rising each time)" % what,
            str([(e["what"], e["new_moving"]) for e in log]))
    R.check(all(e["old_still"] for e in log),
            "%s: after each switch the old SAs carry nothing more (counters still)" % what,
            str([(e["what"], e["old_still"]) for e in log]))
    # On the wire: each direction's SPIs in rekey order, each generation one unbroken run (no
    # frame of an old SA after the first of its successor), adding up to what was sent.
    for name, src, dst, gens in (("A->B", A_UL, B_UL, [first[0]] + [e["new"][0] for e in log]),
                                 ("B->A", B_UL, A_UL, [first[1]] + [e["new"][1] for e in log])):
        runs = sniff.runs.get((src, dst), [])
        sent = res.get(name, {}).get("sent", {}).get("sent")
        R.check([r[0] for r in runs] == gens and sum(r[1] for r in runs) == sent,
                "%s: %s on the carrier: SPIs %s, one run each, in that order, %s frames = %s sent"
                % (what, name, "->".join("%#x" % g for g in gens), "+".join(str(r[1]) for r in runs), sent),
                "runs seen %s" % [("%#x" % r[0], r[1]) for r in runs[:20]])
    # Every packet of each stream went through exactly one SA generation at each end.
    for name, dst, out_node, in_node, idx in (("A->B", "b", "A", "B", 0), ("B->A", "a", "B", "A", 1)):
        r = res.get(name, {})
        sent = r.get("sent", {}).get("sent")
        last = pair.ab[-1].spi if idx == 0 else pair.ba[-1].spi
        ins = [e["old_in_final"][in_node] for e in log] + [after[in_node].sa_packets(last, True)]
        outs = [e["old_out_final"][out_node] for e in log] + [after[out_node].sa_packets(last, False)]
        ok = None not in ins and None not in outs and sum(ins) == sent and sum(outs) == sent
        R.check(ok, "%s: %s: SA counters (GetCounters sas[]) per generation add up to the %s sent: "
                "encrypted %s, decrypted %s" % (what, name, sent, "+".join(map(str, outs)), "+".join(map(str, ins))),
                "None: no sas[] entry for that SA" if None in ins + outs else "")
    for n in (a, b):
        d = drop_delta(before[n.name], after[n.name])
        R.check(not d, "%s: node %s dropped nothing (every reason)" % (what, n.name), str(d))
    gone = [(n, spi) for e in log for n, spi in (("A", e["old"][0]), ("B", e["old"][1]))
            if (spi, False) in after[n].sas]
    gone += [(n, spi) for e in log for n, spi in (("B", e["old"][0]), ("A", e["old"][1]))
             if (spi, True) in after[n].sas]
    now = {"A": {(pair.ab[-1].spi, False), (pair.ba[-1].spi, True)},
           "B": {(pair.ab[-1].spi, True), (pair.ba[-1].spi, False)}}
    R.check(not gone and all(set(after[n].sas) == now[n] for n in now),
            "%s: GetCounters lists exactly the newest SA pair on each node, the old ones are gone" % what,
            "old still listed %s; listed A %s, B %s" % (gone, sorted(after["A"].sas), sorted(after["B"].sas)))


# --- 3. lifetimes -----------------------------------------------------------------------------

def wait_events(node, n, timeout=3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(node.events) < n:
        time.sleep(0.05)
    return list(node.events)


def burst_and_count(env, src, dst, addr, port, count, run_id):
    out = os.path.join(env["tmp"], "life-%d.json" % run_id)
    ready = out + ".ready"
    recv = ns_popen(env["ns"][dst], PY, TRAFFIC, "receive", port, "--run-id", run_id, "--out", out, "--ready", ready)
    wait_file(ready)
    rc, text, err = ns_run(env["ns"][src], PY, TOOLS, "burst", addr, port, count, "--pps", 1000, "--run-id", run_id)
    time.sleep(0.5)
    stop_child(recv)
    try:
        with open(out) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"received": -1, "distinct": -1}


def state_name(s):
    return dp.SaState.Name(s.state) if s is not None else "absent"


def lifetimes(env, pair, spis):
    a, b = pair.a, pair.b
    # Outbound: A's A->B SA, by packets. Inbound: B's A->B SA, by bytes (a later pair).
    for case, node, inbound, life, unit in (
            ("outbound, packets", a, False, dict(soft_packets=40, hard_packets=80), 1),
            ("inbound, bytes", b, True, dict(soft_bytes=30 * INNER_UDP, hard_bytes=60 * INNER_UDP), INNER_UDP)):
        what = "SA lifetime (%s)" % case
        soft, hard = (life.get("soft_packets") or life["soft_bytes"] // unit,
                      life.get("hard_packets") or life["hard_bytes"] // unit)
        ab, ba = Keys(spis.next(0x50000), "gcm"), Keys(spis.next(0x60000), "gcm")
        key = "out" if not inbound else "in"
        pair.install(ab, ba, pair.udp, a_life={key: life} if node is a else None,
                     b_life={key: life} if node is b else None)
        n_events = len(node.events)
        port = 6100 + (1 if inbound else 0)
        first = soft + (hard - soft) // 2
        r1 = burst_and_count(env, "a", "b", B_LAN + ".10", port, first, port * 10 + 1)
        ev = wait_events(node, n_events + 1)[n_events:]
        s1 = node.snap()
        st1 = s1.sas.get((ab.spi, inbound))
        R.check(r1.get("distinct") == first, "%s: %d datagrams between soft (%d) and hard (%d): all %s delivered"
                % (what, first, soft, hard, r1.get("distinct")))
        R.check(len(ev) == 1 and ev[0].kind == dp.SaEvent.SOFT_EXPIRED and ev[0].spi == ab.spi and
                ev[0].inbound == inbound and ev[0].tunnel == ("t-ab" if node is a else "t-ba") and
                ev[0].packets == soft,
                "%s: WatchSaEvents: SOFT_EXPIRED for SPI %#x at packet %d" % (what, ab.spi, soft),
                str([(dp.SaEvent.Kind.Name(e.kind), hex(e.spi), e.inbound, e.tunnel, e.packets, e.bytes)
                     for e in ev]))
        R.check(st1 is not None and st1.state == dp.SA_SOFT_EXPIRED,
                "%s: SaCounters.state SA_SOFT_EXPIRED while still in use" % what, state_name(st1))
        second = hard  # more than what is left
        r2 = burst_and_count(env, "a", "b", B_LAN + ".10", port, second, port * 10 + 2)
        ev = wait_events(node, n_events + 2)[n_events:]
        s2 = node.snap()
        st2 = s2.sas.get((ab.spi, inbound))
        allowed = hard - first
        R.check(r2.get("distinct") == allowed,
                "%s: of %d more, exactly %d (up to the hard limit) delivered" % (what, second, allowed),
                "received %s" % r2.get("distinct"))
        R.check(len(ev) == 2 and ev[1].kind == dp.SaEvent.HARD_EXPIRED and ev[1].spi == ab.spi and
                ev[1].packets == hard and ev[1].timestamp_ns >= ev[0].timestamp_ns > 0,
                "%s: WatchSaEvents: then HARD_EXPIRED at packet %d" % (what, hard),
                str([(dp.SaEvent.Kind.Name(e.kind), hex(e.spi), e.packets, e.bytes) for e in ev]))
        R.check(st2 is not None and st2.state == dp.SA_HARD_EXPIRED,
                "%s: SaCounters.state SA_HARD_EXPIRED" % what, state_name(st2))
        dropped = drop_delta(s1, s2).get("sa_expired", 0)
        sa_drop = s2.sa_drops(ab.spi, inbound) or {}
        R.check(dropped == second - allowed and sa_drop.get("sa_expired") == second - allowed,
                "%s: the other %d dropped as sa_expired (node %s), counted on the SA too"
                % (what, second - allowed, node.name), "sa_expired +%d, SA drops %s" % (dropped, sa_drop))
        # The peer's SA of the other direction is untouched.
        other = s2.sas.get((ba.spi, not inbound))
        R.check(other is not None and other.state == dp.SA_ACTIVE,
                "%s: the SA of the other direction stays active" % what, state_name(other))


# --- 4. IKE exception path ------------------------------------------------------------------

def ike_setup(env, a):
    """Moves A's exception TAP into its namespace, gives it the tunnel endpoint addresses and
    starts the listener (the stand-in for charon) on UDP 500 and 4500."""
    tap, ns = env["tap"], env["ns"]["ike"]
    R.check(os.path.exists("/sys/class/net/%s" % tap), "node A created its exception TAP %s" % tap)
    ip("link", "set", tap, "netns", ns)
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
    for addr in (A_UL + "/24", PEER_U[0] + "/24", PEER_V[0] + "/24"):
        ip("-n", ns, "addr", "add", addr, "dev", tap)
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "link", "set", tap, "up")
    log = os.path.join(env["tmp"], "ike-listen.log")
    ready = log + ".ready"
    p = ns_popen(ns, PY, TOOLS, "ike-listen", "500,4500", "--log", log, "--ready", ready)
    if not wait_file(ready):
        raise Abort("the IKE listener did not start")
    return {"proc": p, "log": log}


def read_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def ike(env, a, b, listener):
    what = "IKE exception path"
    # Nothing so far reached the listener: ESP in UDP on 4500 (the rounds) is not IKE.
    early = read_lines(listener["log"])
    R.check(not early, "%s: ESP in UDP to port 4500 (without the non-ESP marker) was never punted" % what,
            "%d datagrams at the listener: %s" % (len(early), early[:2]))
    s0 = a.snap()
    results = []
    for port, marker in ((500, False), (4500, True)):
        args = [PY, TOOLS, "ike-send", PEER_U[1], PEER_U[0], port, 3] + (["--marker"] if marker else [])
        rc, out, err = ns_run(env["ns"]["peer"], *args)
        results.append(("untagged", port, out, err))
        a2_mac = a.port_mac("a2")
        args = [PY, TOOLS, "ike-raw", "eth0", "--vlan", 20, "--src-mac", env["mac"]["peer"], "--dst-mac", a2_mac,
                PEER_V[1], PEER_V[0], port, 3] + (["--marker"] if marker else [])
        rc, out2, err2 = ns_run(env["ns"]["peer"], *args)
        results.append(("VLAN 20", port, out2, err2))
    time.sleep(0.3)
    s1 = a.snap()
    heard = read_lines(listener["log"])
    for where, port, out, err in results:
        try:
            r = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            R.check(False, "%s: %s peer, UDP %d" % (what, where, port), (out + err)[-300:])
            continue
        peer, local = (PEER_U[1], PEER_U[0]) if where == "untagged" else (PEER_V[1], PEER_V[0])
        got = [h for h in heard if h["port"] == port and h["src"] == peer]
        R.check([h["data"] for h in got] == r["sent"] and all(h["dst"] == local and h["sport"] == port for h in got),
                "%s: %s peer %s:%d -> %s:%d%s: all %d datagrams reach the socket in the TAP's namespace, "
                "unchanged, addressed to %s" % (what, where, peer, port, local, port,
                                                " (non-ESP marker)" if port == 4500 else "", len(r["sent"]), local),
                "listener got %s" % [(h["src"], h["sport"], h["dst"], h["data"]) for h in got])
        marker = "00000000" if port == 4500 else ""
        want = [marker + b"REPLY:".hex() + s[len(marker):] for s in r["sent"]]
        reps = r["replies"]
        ok = sorted(x["data"] for x in reps) == sorted(want) and all(x["src"] == local and x["sport"] == port
                                                                     for x in reps)
        if where == "VLAN 20":
            ok = ok and all(x["vlan"] == 20 and x["src_mac"] == a2_mac.lower() for x in reps)
        R.check(ok, "%s: %s peer: the socket's %d replies come back from %s:%d%s"
                % (what, where, len(want), local, port, " tagged VLAN 20" if where == "VLAN 20" else " untagged"),
                "replies %s" % [(x["src"], x["sport"], x.get("vlan"), x["data"][:40]) for x in reps])
    stray = [h for h in heard if h["src"] not in (PEER_U[1], PEER_V[1])]
    R.check(not stray, "%s: nothing else reached the listener" % what, str(stray[:3]))
    d_if = {n: s1.ifs[n].tx_packets - s0.ifs[n].tx_packets for n in ("a-peer", "a-peer20", "a-car")}
    # a-peer also carries medix-dp's ARP for the untagged peer and its answer to the peer's ARP.
    R.check(6 <= d_if["a-peer"] <= 8 and d_if["a-peer20"] == 6 and d_if["a-car"] == 0,
            "%s: the replies left through the right interfaces (a-peer %d incl. ARP, a-peer20 %d, a-car %d frames)"
            % (what, d_if["a-peer"], d_if["a-peer20"], d_if["a-car"]))
    R.check(not drop_delta(s0, s1), "%s: node A dropped nothing" % what, str(drop_delta(s0, s1)))

    # Node B has no exception interface: IKE from A's kernel (in the TAP's namespace) to B's
    # tunnel endpoint is dropped there as ike_no_listener; a NAT-T keepalive as nat_keepalive.
    b0, a0 = b.snap(), a.snap()
    ns = env["ns"]["ike"]
    ns_run(ns, PY, TOOLS, "ike-send", A_UL, B_UL, 500, 3, "--wait", 0.3)
    ns_run(ns, PY, TOOLS, "ike-send", A_UL, B_UL, 4500, 2, "--marker", "--wait", 0.3)
    ns_run(ns, PY, TOOLS, "nat-keepalive", A_UL, B_UL)
    time.sleep(0.5)
    b1, a1 = b.snap(), a.snap()
    d = drop_delta(b0, b1)
    sent_a = a1.ifs["a-car"].tx_packets - a0.ifs["a-car"].tx_packets
    R.check(d.get("ike_no_listener") == 5 and d.get("nat_keepalive") == 1 and len(d) == 2,
            "%s: node B (no exception_interface): IKE to %s:500 and :4500 (marker) dropped as ike_no_listener "
            "(5), the keepalive as nat_keepalive (1); sent by A's kernel through a-car (%d frames)"
            % (what, B_UL, sent_a), "B drops %s, a-car tx %d" % (d, sent_a))


# --- phase "workers" --------------------------------------------------------------------------

def stage_packets(rt, stage):
    per = {}
    for l in rt.lcores:
        for s in l.stages:
            if s.stage == stage:
                per[l.lcore] = s.packets
    return per


def tunnel_counters(snap, name):
    """TunnelCounters, or the tunnel's entry in interfaces[] where tunnels[] lacks it."""
    return snap.tunnels.get(name) or snap.ifs.get(name)


def phase_workers(env):
    what = "two workers on A"
    a = Node(env, "A", "0@0,1@1,2@1", [env["rif"]["a"], env["carrier"]["a"]],
             config_a(env, with_peer=False, exception=False), qpairs=2)
    b = Node(env, "B", "0@0,1@1", [env["rif"]["b"], env["carrier"]["b"]], config_b(env))
    nodes = [a, b]
    tcp = None
    try:
        for n in nodes:
            try:
                n.ready()
            except RuntimeError as e:
                R.check(False, "medix-dp %s starts" % n.name, str(e))
                raise Abort("no medix-dp")
        R.check("2 workers" in a.ready_line(), "%s: medix-dp A ready with 2 workers (%s)" % (what, a.ready_line()))
        pair = Pair(a, b)
        spis = Spis()
        # Generation 1: A's inbound SA odd (worker 1), its outbound even (worker 0); the rekey
        # flips both. af_packet spreads packets over the queues by a flow hash: ESP in UDP from
        # B has one 5-tuple whatever the SPI (raw ESP would hash the SPI too), and each inner
        # flow from a-lan keeps its queue; so in one of the two generations every packet
        # arrives on the worker that does not own its SA.
        ab = Keys(spis.next(0x70000, 0), "gcm")  # A outbound: even
        ba = Keys(spis.next(0x80000, 1), "gcm")  # A inbound: odd
        pair.install(ab, ba, 4500)
        tcp = Tcp(env)
        n_ab, n_ba = ping(env["ns"]["a"], B_LAN + ".10"), ping(env["ns"]["b"], A_LAN + ".10")
        R.check(n_ab == 5 and n_ba == 5, "%s: ping A->B %d/5, B->A %d/5 (A's SAs: out %#x -> worker %d, in %#x -> "
                "worker %d)" % (what, n_ab, n_ba, ab.spi, ab.spi % 2, ba.spi, ba.spi % 2))
        check_tcp(tcp.both_ways("w1"), what + ", SPIs %#x/%#x" % (ab.spi, ba.spi))
        before = {"A": a.snap(), "B": b.snap()}
        rt0 = a.c.runtime()
        flows = [("A->B #%d" % i, "a", "b", B_LAN + ".10", 6200 + i) for i in range(4)]
        flows += [("B->A #%d" % i, "b", "a", A_LAN + ".10", 6210 + i) for i in range(2)]
        pps = max(200, PPS // 4)
        sniff = Sniffer([env["carrier"]["a"], env["carrier"]["b"]])
        streams = Streams(env, flows, pps, 60)
        log = []
        try:
            time.sleep(2.0)
            # A's new inbound SA even (worker 0), its new outbound odd (worker 1).
            e = rekey(pair, spis, "cbc", "rekey", log, a_in_parity=0, a_out_parity=1)
            time.sleep(2.0)
        finally:
            res = streams.finish()
            sniff.stop()
        after = {"A": a.snap(), "B": b.snap()}
        rt1 = a.c.runtime()
        check_streams(res, what + " with a rekey flipping the SAs' owners")
        R.info("rekey: A outbound %#x -> %#x (worker %d -> %d), A inbound %#x -> %#x (worker %d -> %d)"
               % (e["old"][0], e["new"][0], e["old"][0] % 2, e["new"][0] % 2, e["old"][1], e["new"][1],
                  e["old"][1] % 2, e["new"][1] % 2))
        R.check(e["new_moving"] and e["old_still"],
                "%s: the traffic moved to the new SAs (GetCounters sas[])" % what,
                "new SAs' counters rising: %s, old SAs' still: %s; SAs in GetCounters: %d"
                % (e["new_moving"], e["old_still"], len(after["A"].sas)))
        for name, src, dst, gens, n_flows in (("A->B", A_UL, B_UL, [e["old"][0], e["new"][0]], 4),
                                              ("B->A", B_UL, A_UL, [e["old"][1], e["new"][1]], 2)):
            # Two workers each encrypt what they hold with the tables they hold: a few frames of
            # the old SA may cross after the first of the new one (the receiver has both).
            runs = sniff.runs.get((src, dst), [])
            sent = sum(r.get("sent", {}).get("sent", 0) for k, r in res.items() if k.startswith(name))
            late = sum(r[1] for r in runs[1:] if r[0] == gens[0])
            R.check(runs and runs[0][0] == gens[0] and runs[-1][0] == gens[1] and
                    {r[0] for r in runs} == set(gens) and sum(r[1] for r in runs) == sent,
                    "%s: %s on the carrier: SPI %#x, then %#x only, %d frames = %d sent by %d flows"
                    % (what, name, gens[0], gens[1], sum(r[1] for r in runs), sent, n_flows),
                    "runs seen %s" % [("%#x" % r[0], r[1]) for r in runs[:20]])
            if late:
                R.info("(%s: %d frames of the old SA crossed after the first of the new: %s)"
                       % (name, late, [("%#x" % r[0], r[1]) for r in runs[:10]]))
        d = drop_delta(before["A"], after["A"])
        R.check(not d, "%s: node A dropped nothing (no handoff_full)" % what, str(d))
        d = drop_delta(before["B"], after["B"])
        R.check(not d, "%s: node B dropped nothing" % what, str(d))
        # Hand-offs: a packet is counted in esp_input/esp_output by the worker it arrived on
        # and again by its SA's owner; the tunnel counts it once.
        t0, t1 = tunnel_counters(before["A"], "t-ab"), tunnel_counters(after["A"], "t-ab")
        ein = {k: v - stage_packets(rt0, "esp_input").get(k, 0) for k, v in stage_packets(rt1, "esp_input").items()}
        eout = {k: v - stage_packets(rt0, "esp_output").get(k, 0) for k, v in stage_packets(rt1, "esp_output").items()}
        h_in = sum(ein.values()) - (t1.rx_packets - t0.rx_packets)
        h_out = sum(eout.values()) - (t1.tx_packets - t0.tx_packets)
        R.check(h_in > 0 and h_out > 0,
                "%s: packets were handed to the SA's owner worker: ~%d inbound, ~%d outbound "
                "(esp_input per lcore %s, esp_output per lcore %s; tunnel rx %d, tx %d)"
                % (what, h_in, h_out, ein, eout, t1.rx_packets - t0.rx_packets, t1.tx_packets - t0.tx_packets))
        n_ab, n_ba = ping(env["ns"]["a"], B_LAN + ".10"), ping(env["ns"]["b"], A_LAN + ".10")
        R.check(n_ab == 5 and n_ba == 5, "%s: after the rekey: ping A->B %d/5, B->A %d/5" % (what, n_ab, n_ba))
        check_tcp(tcp.both_ways("w2"), what + ", after the rekey")
        s = a.snap()
        d = drop_delta(after["A"], s, ESP_DROPS)
        R.check(not d, "%s: node A: no ESP-related drops during ping and TCP" % what, str(d))
    except Abort as e:
        R.check(False, "phase workers: %s" % e)
    finally:
        if tcp:
            tcp.stop()
        for n in nodes:
            rc, killed = n.stop()
            R.check(rc == 0 and not killed, "%s: medix-dp %s exits 0 on SIGTERM" % (what, n.name),
                    "status %s%s" % (rc, ", killed" if killed else ""))


# --- main -------------------------------------------------------------------------------------

def watchdog():
    print("FAIL the IPsec test did not finish within %d s" % TOTAL_TIMEOUT, flush=True)
    kill_children()
    api.kill_all()
    os._exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", required=True)
    ap.add_argument("--only", action="append", choices=["pair", "workers"])
    args = ap.parse_args()
    with open(args.env) as f:
        env = json.load(f)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    OUTPUTS.start()
    problems = keygrep.self_test()  # the last check would find a leak
    R.check(not problems, "the key check finds a planted key in every form", "; ".join(problems))
    timer = threading.Timer(TOTAL_TIMEOUT, watchdog)
    timer.daemon = True
    timer.start()
    try:
        for name, fn in (("pair", phase_pair), ("workers", phase_workers)):
            if args.only and name not in args.only:
                continue
            t0 = time.monotonic()
            try:
                fn(env)
            except Exception:  # noqa: BLE001
                R.check(False, "phase %s crashed" % name, traceback.format_exc()[-1500:])
            R.info("(phase %s: %.1f s)" % (name, time.monotonic() - t0))
    finally:
        kill_children()
    # Last, over everything: the medix-dp logs and all else in the temp dir, this driver's output
    # (driver.log), the output of every program it ran, every gRPC error.
    api.kill_all()
    ok, what, details = SECRETS.check([env["tmp"]], OUTPUTS.texts() + [("gRPC error", e) for e in api.errors])
    R.check(ok, "no key or PSK in any log or error of this suite (%s)" % what, details)
    return 0 if R.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
