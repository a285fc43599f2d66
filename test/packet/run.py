#!/usr/bin/python3
"""Packet tests: feed pcaps through the real medix-dp on net_pcap ports, compare what comes out.

    /usr/bin/python3 test/packet/run.py [--binary PATH] [--keep] [-v] [CASE ...]

CASE is a folder name under test/packet/cases (e.g. 003_qinq), its number (003) or its name
(qinq); default: every case. See test/packet/README.md for the layout of a case.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import scapy  # noqa: F401
except ImportError:  # e.g. a pyenv python3 first on PATH: use Debian's, which has scapy
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
            os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CASES = os.path.join(HERE, "cases")
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))

from medixpkt import read_pcap, write_pcap  # noqa: E402
import medixesp  # noqa: E402
import keygrep  # noqa: E402

GEN_TIMEOUT = 60          # s, gen.py
READY_TIMEOUT = 30        # s, from exec to "medix-dp: ready"
RX_TIMEOUT = 20           # s, until every sent frame is counted as received
EXIT_TIMEOUT = 15         # s, from SIGTERM to exit
TELEMETRY_TIMEOUT = 5     # s, one telemetry request
DEFAULT_SETTLE = 0.3      # s, after the last frame was received


class Failure(Exception):
    pass


# --- medix-dp process -------------------------------------------------------------------------

class Dataplane:
    """One medix-dp process; output collected by a thread; always killed on close()."""

    def __init__(self, cmd, log_path):
        self.cmd = cmd
        self.lines = []
        self.ready = threading.Event()
        self.log = open(log_path, "w")
        self.log.write("$ " + " ".join(cmd) + "\n")
        self.log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=ROOT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.log.write(line + "\n")
            self.log.flush()
            if line.startswith("medix-dp: ready"):
                self.ready.set()

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.wait(0.05):
                return
            if self.proc.poll() is not None:
                self.reader.join(2)
                raise Failure(f"medix-dp exited with status {self.proc.returncode} before "
                              f"ready:\n{self.tail()}")
        raise Failure(f"no 'medix-dp: ready' line within {timeout} s:\n{self.tail()}")

    def stop(self, timeout):
        """SIGTERM, wait; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.reader.join(2)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        self.kill()
        self.reader.join(2)
        self.log.close()

    def tail(self, n=25):
        return "\n".join("    | " + l for l in self.lines[-n:])


# --- telemetry --------------------------------------------------------------------------------

def runtime_dir(prefix):
    base = "/var/run/dpdk" if os.geteuid() == 0 else os.path.join(
        os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk")
    return os.path.join(base, prefix)


class Telemetry:
    def __init__(self, prefix, dp, timeout=10):
        path = os.path.join(runtime_dir(prefix), "dpdk_telemetry.v2")
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if dp.proc.poll() is not None:
                raise Failure(f"medix-dp exited with status {dp.proc.returncode}:\n{dp.tail()}")
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                s.settimeout(TELEMETRY_TIMEOUT)
                s.connect(path)
                greeting = json.loads(s.recv(65536).decode())
                self.sock, self.max_len = s, greeting.get("max_output_len", 16384)
                return
            except (OSError, ValueError) as e:
                last = e
                s.close()
                time.sleep(0.1)
        raise Failure(f"cannot connect to telemetry socket {path}: {last}")

    def get(self, cmd):
        try:
            self.sock.send(cmd.encode())
            reply = self.sock.recv(max(65536, self.max_len * 2))
        except OSError as e:
            raise Failure(f"telemetry {cmd}: {e}")
        if not reply:
            raise Failure(f"telemetry {cmd}: connection closed")
        try:
            data = json.loads(reply.decode())
        except ValueError as e:
            raise Failure(f"telemetry {cmd}: bad JSON ({e}): {reply[:200]!r}")
        # The reply is keyed by the command without its parameter ("/medix/x,param").
        value = data.get(cmd.split(",")[0]) if isinstance(data, dict) else None
        if not isinstance(value, dict):
            raise Failure(f"telemetry {cmd}: unexpected reply {reply[:300]!r}")
        return value

    def close(self):
        self.sock.close()


# --- comparison -------------------------------------------------------------------------------

def describe(frame):
    from scapy.all import Ether
    try:
        return Ether(frame).summary()
    except Exception as e:  # a malformed frame may not dissect
        return f"<{len(frame)} bytes, no dissection: {e}>"


def hexdiff_text(a, b, context=1, limit=16):
    """Hex rows of two frames: the 16-byte rows that differ (marked !!) with `context` equal
    rows around them, at most `limit` rows."""
    rows = range(0, max(len(a), len(b)), 16)
    differ = {off for off in rows if a[off:off + 16] != b[off:off + 16]}
    show = [off for off in rows
            if any(abs(off - d) <= 16 * context for d in differ)]
    out, last = [], None
    for off in show[:limit]:
        if last is not None and off != last + 16:
            out.append("         ...")
        ra, rb = a[off:off + 16], b[off:off + 16]
        mark = "!!" if off in differ else "  "
        out.append(f"      {mark} {off:04x}  expected {ra.hex(' '):<47}  got {rb.hex(' ')}")
        last = off
    if len(show) > limit:
        out.append(f"         ... ({len(differ)} differing rows in all)")
    return "\n".join(out)


def show_fields(frame):
    from scapy.all import Ether
    try:
        return Ether(frame).show2(dump=True)
    except Exception:
        return ""


def frame_diff(e, g):
    lines = [f"    expected: {describe(e)} [{len(e)} B]", f"    got:      {describe(g)} [{len(g)} B]",
             hexdiff_text(e, g)]
    fe, fg = show_fields(e).splitlines(), show_fields(g).splitlines()
    cut = lambda t: t if len(t) <= 60 else t[:57] + "..."
    diff = [f"      {cut(x.strip()):<40} | {cut(y.strip())}" for x, y in zip(fe, fg) if x != y]
    if diff:
        lines.append("    fields that differ (expected | got):")
        lines.extend(diff[:20])
    return lines


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def compare_port(port, expected, got, streams=None):
    """None if `got` matches, else a description of the first difference.

    Without streams the order must be exact. With streams (one name per expected frame),
    `got` must be an interleaving of the per-stream sequences: order is checked within a
    stream only."""
    if expected == got:
        return None
    if streams is None or len(streams) != len(expected):
        streams = ["all"] * len(expected)
    queues = {}
    for f, s in zip(expected, streams):
        queues.setdefault(s, []).append(f)
    heads = {s: 0 for s in queues}
    lines = [f"port {port}: expected {len(expected)} frames, got {len(got)}"]
    for i, g in enumerate(got):
        match = next((s for s in queues if heads[s] < len(queues[s])
                      and queues[s][heads[s]] == g), None)
        if match is not None:
            heads[match] += 1
            continue
        pending = [(s, queues[s][heads[s]]) for s in queues if heads[s] < len(queues[s])]
        if not pending:
            lines.append(f"  frame {i} is one too many: {describe(g)} [{len(g)} B]")
        else:
            s, e = max(pending, key=lambda p: (common_prefix(p[1], g), -abs(len(p[1]) - len(g))))
            lines.append(f"  frame {i} differs from what was due next"
                         + (f" (stream {s})" if len(queues) > 1 else "") + ":")
            lines += frame_diff(e, g)
            if len(pending) > 1:
                lines.append("    other frames due next: " + "; ".join(
                    f"[{ps}] {describe(pe)}" for ps, pe in pending if ps != s)[:600])
        break
    else:
        missing = [(s, queues[s][h]) for s, h in heads.items() if h < len(queues[s])]
        if not missing:
            return None  # the same frames, streams interleaved differently: allowed
        lines.append(f"  {sum(len(queues[s]) - h for s, h in heads.items())} expected frames "
                     "never came, first: " + "; ".join(f"[{s}] {describe(f)}"
                                                        for s, f in missing)[:600])
    if len(expected) != len(got):
        lines.append("  all expected: " + "; ".join(describe(f) for f in expected[:12]))
        lines.append("  all got:      " + "; ".join(describe(f) for f in got[:12]))
    return "\n".join(lines)


def compare_counters(kind, expected, got, strict_zero=True):
    problems = []
    for k, v in sorted(expected.items()):
        if k not in got:
            problems.append(f"{kind} {k}: expected {v}, not reported by medix-dp")
        elif got[k] != v:
            problems.append(f"{kind} {k}: expected {v}, got {got[k]}")
    if strict_zero:
        for k, v in sorted(got.items()):
            if k not in expected and v != 0:
                problems.append(f"{kind} {k}: expected 0, got {v}")
    return problems


# --- timed phases: ports fed through veth pairs --------------------------------------------------

class Veths:
    """Timed phases (phases.json from gen.py, see README.md): each port reads a veth
    (net_pcap rx_iface_in) whose peer run.py writes the frames into, phase by phase, so that
    a phase can wait (seconds) after the previous one was received. IPv6 is off on both ends
    and they have no address: the kernel sends nothing of its own."""

    def __init__(self, ports, tag):
        self.pairs = {p["name"]: (f"mx{tag}p{i}a", f"mx{tag}p{i}b") for i, p in enumerate(ports)}
        self.socks = {}

    def start(self):
        try:
            for a, b in self.pairs.values():
                self._ip("link", "add", a, "mtu", "9000", "type", "veth", "peer", "name", b, "mtu", "9000")
                for x in (a, b):
                    with open(f"/proc/sys/net/ipv6/conf/{x}/disable_ipv6", "w") as f:
                        f.write("1")
                    self._ip("link", "set", x, "up")
            for name, (a, b) in self.pairs.items():
                so = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                so.bind((b, 0))
                self.socks[name] = so
        except Exception:
            self.close()
            raise

    @staticmethod
    def _ip(*args):
        r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"ip {' '.join(args)}: {r.stderr.strip()}")

    def rx_dev(self, port):
        return self.pairs[port][0]

    def send(self, port, frames):
        for fr in frames:
            self.socks[port].send(fr)

    def close(self):
        for so in self.socks.values():
            so.close()
        self.socks = {}
        for a, _ in self.pairs.values():
            if os.path.exists(f"/sys/class/net/{a}"):
                subprocess.run(["ip", "link", "del", a], capture_output=True)


def wait_rx(tel, dp, target):
    """Polls /medix/ports until the ports' rx_packets add up to `target`; returns the sum."""
    deadline = time.monotonic() + RX_TIMEOUT
    while True:
        stats = tel.get("/medix/ports")
        rx = sum(int(s.get("rx_packets", 0)) for s in stats.values())
        if rx >= target:
            break
        if dp.proc.poll() is not None:
            raise Failure(f"medix-dp exited with status {dp.proc.returncode} while "
                          f"receiving:\n{dp.tail()}")
        if time.monotonic() > deadline:
            raise Failure(f"only {rx} of {target} sent frames were received within "
                          f"{RX_TIMEOUT} s; /medix/ports: {json.dumps(stats)}")
        time.sleep(0.05)
    if rx != target:
        raise Failure(f"received {rx} frames, but {target} were sent; "
                      f"/medix/ports: {json.dumps(stats)}")
    return rx


# --- one case ---------------------------------------------------------------------------------

def load_json(path, default):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


# The suite's last check (test/lib/keygrep.py): no key of a case's config (its SAs' keys) in
# what medix-dp wrote for the case, nor in the case's failure message. expect_esp.json holds the
# outbound SAs' keys by right (the runner decrypts with them).
KEYS = {"findings": [], "files": 0, "secrets": 0, "seconds": 0.0}


def key_check(case_dir, name, tmp, why):
    secrets = keygrep.Secrets()
    secrets.add_config(os.path.join(case_dir, "config.json"), name)
    if not secrets.items:
        return
    t0 = time.monotonic()
    findings, files = secrets.scan([tmp], skip=("expect_esp.json",))
    if why:
        findings += secrets.scan_text(f"the FAIL message of {name}", why)
    KEYS["findings"] += findings
    KEYS["files"] += files
    KEYS["secrets"] += len(secrets.items)
    KEYS["seconds"] += time.monotonic() - t0


def run_case(case_dir, binary, keep, verbose, seq):
    name = os.path.basename(case_dir)
    tmp = tempfile.mkdtemp(prefix=f"medix-packet-{name}-")
    ok = False
    why = None
    try:
        _run_case(case_dir, name, tmp, binary, verbose, seq)
        ok = True
        return None
    except Failure as e:
        why = f"{e}\n  (files kept in {tmp})"
        return why
    except Exception as e:  # a broken case or runner: a failure, never a hang
        import traceback
        why = f"runner error: {e}\n{traceback.format_exc()}  (files kept in {tmp})"
        return why
    finally:
        key_check(case_dir, name, tmp, why)
        if ok and not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _run_case(case_dir, name, tmp, binary, verbose, seq):
    config_path = os.path.join(case_dir, "config.json")
    config = load_json(config_path, None)
    if config is None:
        raise Failure("no config.json")
    opts = load_json(os.path.join(case_dir, "case.json"), {})
    settle = float(opts.get("settle_s", DEFAULT_SETTLE))

    gen = os.path.join(case_dir, "gen.py")
    try:
        r = subprocess.run([sys.executable, gen, tmp], capture_output=True, text=True,
                           timeout=GEN_TIMEOUT, cwd=case_dir)
    except subprocess.TimeoutExpired:
        raise Failure(f"gen.py took more than {GEN_TIMEOUT} s")
    if r.returncode != 0:
        raise Failure(f"gen.py failed ({r.returncode}):\n{r.stdout}{r.stderr}")

    ports = config.get("ports", [])
    if not ports:
        raise Failure("config.json has no ports")
    # Timed phases (README.md): phase k > 0 of a port is send_<port>.phase<k>.pcap, fed
    # phases[k-1]["wait_s"] after every frame of the phases before it was received.
    phases = load_json(os.path.join(tmp, "phases.json"), {}).get("phases", [])
    veths = Veths(ports, f"{os.getpid() % 10000}{seq % 100}") if phases else None
    sent_total = 0
    vdevs = []
    feeds = [{} for _ in range(len(phases) + 1)]  # per phase: {port: frames}
    for p in ports:
        pname, dev = p["name"], p["device"]
        if not dev.startswith("net_pcap"):
            raise Failure(f"port {pname}: device {dev} is not a net_pcap vdev")
        rx = os.path.join(tmp, f"send_{pname}.pcap")
        if not os.path.exists(rx):
            write_pcap(rx, [])
        sent_total += len(read_pcap(rx))
        tx = os.path.join(tmp, f"out_{pname}.pcap")
        if veths:
            feeds[0][pname] = read_pcap(rx)
            for k in range(1, len(phases) + 1):
                f = os.path.join(tmp, f"send_{pname}.phase{k}.pcap")
                feeds[k][pname] = read_pcap(f) if os.path.exists(f) else []
                sent_total += len(feeds[k][pname])
            vdevs += ["--vdev", f"{dev},rx_iface_in={veths.rx_dev(pname)},tx_pcap={tx}"]
        else:
            vdevs += ["--vdev", f"{dev},rx_pcap={rx},tx_pcap={tx}"]

    prefix = f"medix-pkt-{os.getpid()}-{seq}"
    cmd = [binary, "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix,
           "-l", opts.get("lcores", "0,1")] + vdevs + ["--", "--config", config_path]
    tel = None
    try:
        if veths:
            veths.start()
        dp = Dataplane(cmd, os.path.join(tmp, "medix-dp.log"))
    except Exception:
        if veths:
            veths.close()
        raise
    try:
        dp.wait_ready(READY_TIMEOUT)
        tel = Telemetry(prefix, dp)
        if veths:
            fed = 0
            for k, feed in enumerate(feeds):
                if k:
                    time.sleep(max(float(phases[k - 1].get("wait_s", 0)), DEFAULT_SETTLE))
                for pname, frames in feed.items():
                    veths.send(pname, frames)
                    fed += len(frames)
                wait_rx(tel, dp, fed)
        else:
            wait_rx(tel, dp, sent_total)
        time.sleep(settle)
        # Log lines the case expects (medix-dp writes some once a second at most).
        missing = load_json(os.path.join(tmp, "expect_log.json"), [])
        deadline = time.monotonic() + 3
        while missing and time.monotonic() < deadline:
            missing = [x for x in missing if not any(re.search(x, line) for line in list(dp.lines))]
            time.sleep(0.05)
        drops = tel.get("/medix/drops")
        events = tel.get("/medix/events")
        # Kinds' counters the case expects (policers' per colour): {list: {row: {column: n}}}
        expect_kinds = load_json(os.path.join(tmp, "expect_kind_counters.json"), {})
        kind_rows = {k: {e["row"]: e for e in tel.get(f"/medix/kind_counters,{k}").values()}
                     for k in expect_kinds}
        tel.close()
        tel = None
        rc = dp.stop(EXIT_TIMEOUT)
        if rc is None:
            raise Failure(f"medix-dp did not exit within {EXIT_TIMEOUT} s of SIGTERM:\n"
                          f"{dp.tail()}")
        if rc != 0:
            raise Failure(f"medix-dp exited with status {rc} after SIGTERM:\n{dp.tail()}")
    finally:
        if tel:
            tel.close()
        dp.close()
        if veths:
            veths.close()
        shutil.rmtree(runtime_dir(prefix), ignore_errors=True)
    if verbose:
        print(dp.tail(200))

    problems = ["medix-dp did not log a line matching %r" % x for x in missing]
    streams = load_json(os.path.join(tmp, "expect_streams.json"), {})
    # ESP cases: outbound ESP frames are decrypted and compared in plain form (lib/medixesp.py)
    esp_spec = load_json(os.path.join(tmp, "expect_esp.json"), None)
    esp = medixesp.Checker(esp_spec) if esp_spec is not None else None
    for p in ports:
        pname = p["name"]
        exp_path = os.path.join(tmp, f"expect_{pname}.pcap")
        expected = read_pcap(exp_path) if os.path.exists(exp_path) else []
        out_path = os.path.join(tmp, f"out_{pname}.pcap")
        if not os.path.exists(out_path):
            problems.append(f"port {pname}: medix-dp wrote no {out_path}")
            continue
        got = read_pcap(out_path)
        if esp:
            plain, got, why = esp.normalize(pname, got)
            problems += why
            write_pcap(os.path.join(tmp, f"out_esp_{pname}.pcap"), plain)
            exp_esp = read_pcap(os.path.join(tmp, f"expect_esp_{pname}.pcap"))
            d = compare_port(f"{pname} (ESP frames, decrypted: outer header with ID 0, SPI and "
                             "sequence number, inner packet)", exp_esp, plain,
                             esp_spec["streams"].get(pname))
            if d:
                problems.append(d)
            problems += medixesp.tshark_problems(out_path, pname, esp_spec)
        d = compare_port(pname, expected, got, streams.get(pname))
        if d:
            problems.append(d)
    problems += compare_counters("drop", load_json(os.path.join(tmp, "expect_drops.json"), {}),
                                 drops)
    # events: those listed must match; medix-dp may report more than the case knows of
    problems += compare_counters("event",
                                 load_json(os.path.join(tmp, "expect_events.json"), {}), events,
                                 strict_zero=False)
    for kind, rows in sorted(expect_kinds.items()):
        for row, columns in sorted(rows.items()):
            got = kind_rows[kind].get(row)
            if got is None:
                problems.append(f"{kind} {row}: not reported by medix-dp")
                continue
            problems += compare_counters(f"{kind} {row}", columns,
                                         {k: v for k, v in got.items() if k in columns}, strict_zero=False)
    if problems:
        raise Failure("\n".join(problems))


# --- main -------------------------------------------------------------------------------------

def select_cases(names):
    all_cases = sorted(d for d in os.listdir(CASES)
                       if os.path.isfile(os.path.join(CASES, d, "gen.py")))
    if not names:
        return all_cases
    chosen = []
    for n in names:
        n = os.path.basename(n.rstrip("/"))
        hits = [c for c in all_cases if c == n or c.split("_", 1)[0] == n
                or c.split("_", 1)[-1] == n]
        if not hits:
            sys.exit(f"run.py: no case {n!r} in {CASES}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--binary", default=os.environ.get(
        "MEDIX_DP", os.path.join(ROOT, "build", "dataplane", "medix-dp")))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir of passing cases")
    ap.add_argument("-v", "--verbose", action="store_true", help="print medix-dp's output")
    args = ap.parse_args()

    cases = select_cases(args.cases)
    binary = os.path.abspath(args.binary)
    passed = failed = 0
    problems = keygrep.self_test()  # the last check would find a leak
    if problems:
        failed += 1
        print("FAIL the key check finds a planted key in every form: " + "; ".join(problems), flush=True)
    else:
        passed += 1
        print("PASS the key check finds a planted key in every form", flush=True)
    for seq, c in enumerate(cases):
        if not os.access(binary, os.X_OK):
            why = f"no executable {binary} (run scripts/build)"
        else:
            why = run_case(os.path.join(CASES, c), binary, args.keep, args.verbose, seq)
        if why is None:
            passed += 1
            print(f"PASS {c}", flush=True)
        else:
            failed += 1
            print(f"FAIL {c}: {why}", flush=True)
    what = "%d files, %d secrets; %.2f s" % (KEYS["files"], KEYS["secrets"], KEYS["seconds"])
    if KEYS["findings"]:
        failed += 1
        for f in KEYS["findings"]:
            print("FAIL %s:%d holds %s (%s)" % f)
        print(f"FAIL no key or PSK in any log or error of this suite ({what})", flush=True)
    elif KEYS["secrets"] or not any("esp" in c for c in cases):
        passed += 1
        print(f"PASS no key or PSK in any log or error of this suite ({what})", flush=True)
    else:
        failed += 1
        print(f"FAIL no key or PSK in any log or error of this suite ({what}): ESP cases ran, no key found to "
              "look for", flush=True)
    print(f"packet: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
