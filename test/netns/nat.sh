#!/usr/bin/env bash
# Crossing the IX core with kernel hosts (docs/nat.md): overlapping hospital plans translated
# into the core, policy, and NAPT, through one medix-dp.
#
#   hosp-a-lan  10.0.0.5 ── p0 ─┐                                 ┌─ p2 ── 192.168.1.10  archive
#   hosp-b-lan  10.0.0.5 ── p1 ─┤         medix-dp                │        192.168.1.11
#   hosp-c-lan  10.0.0.5 ── p3 ─┤  tenant "ix" (core: true)       │  (100.100.2.0/24 in the core)
#   hosp-d-lan  10.0.0.5 ── p4 ─┘  leaks 100.64.0.0/10 <-> tenants┘
#               10.0.0.6
#
#   hosp-a   10.0.0.0/24 ⇄ 100.64.1.0/24 (static)    policy: hosp-a -> archive TCP 5001 permit
#   hosp-b   10.0.0.0/24 ⇄ 100.64.2.0/24 (static)    policy: hosp-b -> archive TCP 5001 permit
#   hosp-c   10.0.0.0/24 ⇄ 100.64.3.0/24 (static)    no rule: every new flow policy_denied
#   hosp-d   NAPT pool 100.64.9.1, ports 20000..20999 policy: hosp-d -> archive TCP 5001 permit
#   archive  192.168.1.0/24 ⇄ 100.100.2.0/24 (static)
#
# Every host is a namespace on a veth pair driven by medix-dp through net_af_packet (lib.sh);
# the four hospital LANs use the very same plan, host 10.0.0.5 in each. Checks:
#   - hosp-a and hosp-b open parallel TCP connections to the archive (100.100.2.10:5001) at the
#     same time, each with its own content; the archive echoes every byte back. The archive
#     must see hosp-a as 100.64.1.5 and hosp-b as 100.64.2.5 (ports kept by static mappings),
#     every byte it got must be the sender's (sha256), and every byte echoed must come back to
#     the connection that sent it (sha256 at the sender);
#   - hosp-c gets nothing through (connect times out, the archive sees nothing), counted as
#     policy_denied; a port or protocol the rules do not name is denied too, and so is the
#     archive opening connections towards a hospital;
#   - hosp-d, behind a NAPT pool of one address, reaches the archive from two inside hosts; the
#     archive sees 100.64.9.1 with ports from the pool's range, one worker's share per inside
#     host; one inside endpoint talking to both archive addresses keeps one pool port (EIM);
#   - sessions (ListSessions) and counters (medixctl counters: nat[], policy_rules[], drops);
#   - a clean exit 0 on SIGTERM.
#
# Usage: test/netns/nat.sh   (root; medix-dp from build/, or MEDIX_DP=path; MEDIXCTL=path)
# Prints PASS/FAIL lines and "nat: N passed, M failed"; exit status 1 on any failure.
# MX_KEEP_TMP=1 keeps the temp dir (config, medix-dp log, transfer logs) for a post-mortem.
# NAT_MIB (default 4) MiB per connection, NAT_CONNS (default 3) connections per hospital.
set -uo pipefail
shopt -s lastpipe   # `... | tally` counts into this shell's totals
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
MIB=${NAT_MIB:-4}
CONNS=${NAT_CONNS:-3}
PORT=5001
ARCHIVE=192.168.1.10     # the archive inside its tenant
ARCHIVE_CORE=100.100.2.10
POOL=100.64.9.1 POOL_LOW=20000 POOL_HIGH=20999

# diagnose: on a failure, medix-dp's drops and NAT/policy counters while it still runs.
diagnose() {
  [ "$failed" -gt 0 ] && [ -n "${MX_DP_PID:-}" ] || return 0
  echo "--- medix-dp drops:"; mx_tele /medix/drops
  echo "--- medixctl counters (nat, policy_rules):"
  timeout 20 "$CTL" -p "$MX_PREFIX" -o json counters 2>&1 |
    "$MX_PY" -c 'import json, sys; d = json.load(sys.stdin); [print("  ", json.dumps(r)) for k in ("nat", "policy_rules") for r in d.get(k, [])]' 2>&1
}
finish() {
  diagnose
  mx_finish nat "config, medix-dp log and transfer logs"
}

mx_init
mx_need_binary
[ -x "$CTL" ] || mx_die "medixctl not found at $CTL (run scripts/build)"

# --- the echo service and its clients (Python, in the temp dir) ---------------------------------
ECHO=$MX_TMP/echo.py
cat >"$ECHO" <<'PY'
"""echo.py serve ADDR PORT LOG
     Threaded TCP echo: for each connection, echo every byte back until EOF, then append one
     JSON line to LOG: {"peer", "tag" (first line), "bytes", "sha256"} of what it received.
   echo.py send ADDR PORT TAG MIB [SRC[:SPORT]]
     Connect (from SRC, and SPORT, if given), send "TAG\\n" and MIB MiB seeded by TAG while reading the echo
     in a thread; print {"tag", "local", "bytes", "sha256", "echo_bytes", "echo_sha256",
     "seconds"}. Exit 1 unless the echo is exactly what was sent.
   echo.py probe ADDR PORT TIMEOUT [SRC]
     One connect attempt: print "connected", "refused", "timeout" or the error."""
import hashlib, json, random, socket, sys, threading, time

CHUNK = 64 * 1024


def serve(addr, port, log):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(64)
    lock = threading.Lock()

    def handle(conn, peer):
        digest, total, head, err = hashlib.sha256(), 0, b"", None
        with conn:
            conn.settimeout(60)
            try:
                while True:
                    data = conn.recv(CHUNK)
                    if not data:
                        break
                    digest.update(data)
                    total += len(data)
                    if len(head) < 256:
                        head += data[:256]
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError as e:
                err = str(e)
        rec = {"peer": f"{peer[0]}:{peer[1]}", "tag": head.split(b"\n", 1)[0].decode(errors="replace"),
               "bytes": total, "sha256": digest.hexdigest()}
        if err:
            rec["error"] = err
        with lock, open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")

    while True:
        conn, peer = srv.accept()
        threading.Thread(target=handle, args=(conn, peer), daemon=True).start()


def connect(addr, port, timeout, src):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:  # "ADDR" or "ADDR:PORT" (a fixed port may be shared by connections to several peers)
        host, _, sport = src.partition(":")
        if sport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(sport or 0)))
    sock.settimeout(timeout)
    sock.connect((addr, port))
    return sock


def send(addr, port, tag, mib, src):
    sock = connect(addr, port, 10, src)
    sock.settimeout(60)
    local = "%s:%d" % sock.getsockname()
    echo = {"bytes": 0, "digest": hashlib.sha256(), "error": None}

    def reader():
        try:
            while True:
                data = sock.recv(CHUNK)
                if not data:
                    break
                echo["digest"].update(data)
                echo["bytes"] += len(data)
        except OSError as e:
            echo["error"] = str(e)

    t = threading.Thread(target=reader, daemon=True)
    start = time.monotonic()
    t.start()
    gen = random.Random(tag)
    digest, total = hashlib.sha256(), 0
    first = (tag + "\n").encode()
    digest.update(first)
    sock.sendall(first)
    total += len(first)
    left = int(mib * 1024 * 1024)
    while left > 0:
        data = gen.randbytes(min(CHUNK, left))
        digest.update(data)
        sock.sendall(data)
        total += len(data)
        left -= len(data)
    sock.shutdown(socket.SHUT_WR)
    t.join(90)
    sock.close()
    res = {"tag": tag, "local": local, "bytes": total, "sha256": digest.hexdigest(),
           "echo_bytes": echo["bytes"], "echo_sha256": echo["digest"].hexdigest(),
           "seconds": round(time.monotonic() - start, 3)}
    if echo["error"]:
        res["error"] = echo["error"]
    print(json.dumps(res), flush=True)
    return 0 if res["echo_sha256"] == res["sha256"] and res["echo_bytes"] == total else 1


def probe(addr, port, timeout, src):
    try:
        connect(addr, port, timeout, src).close()
        print("connected")
    except ConnectionRefusedError:
        print("refused")
    except socket.timeout:
        print("timeout")
    except OSError as e:
        print(f"error: {e}")
    return 0


def main(a):
    if len(a) == 5 and a[1] == "serve":
        serve(a[2], int(a[3]), a[4])
    elif len(a) in (6, 7) and a[1] == "send":
        try:
            return send(a[2], int(a[3]), a[4], float(a[5]), a[6] if len(a) == 7 else None)
        except OSError as e:
            print(json.dumps({"tag": a[4], "error": str(e)}), flush=True)
            return 1
    elif len(a) in (5, 6) and a[1] == "probe":
        return probe(a[2], int(a[3]), float(a[4]), a[5] if len(a) == 6 else None)
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
PY

# --- topology and config -------------------------------------------------------------------------
MX_TENANT_DESC["hosp-a"]="Hospital A: 10.0.0.0/24, static 100.64.1.0/24"
MX_TENANT_DESC["hosp-b"]="Hospital B: the same plan, static 100.64.2.0/24"
MX_TENANT_DESC["archive"]="Imaging archive: 192.168.1.0/24, static 100.100.2.0/24"
MX_TENANT_DESC["hosp-c"]="Hospital C: the same plan, static 100.64.3.0/24, no policy rule"
MX_TENANT_DESC["hosp-d"]="Hospital D: the same plan, NAPT pool $POOL"
mx_attach hosp-a-lan hosp-a  10.0.0.5/24 10.0.0.1/24
mx_attach hosp-b-lan hosp-b  10.0.0.5/24 10.0.0.1/24
mx_attach archive    archive $ARCHIVE/24 192.168.1.1/24
mx_attach hosp-c-lan hosp-c  10.0.0.5/24 10.0.0.1/24
mx_attach hosp-d-lan hosp-d  10.0.0.5/24 10.0.0.1/24
mx_in hosp-d-lan ip addr add 10.0.0.6/24 dev eth0 || mx_die "second address on hosp-d-lan"
# A second archive server, 192.168.1.11 (100.100.2.11 in the core): NAPT's endpoint-independent
# mapping gives one inside endpoint the same pool port towards both.
mx_in archive ip addr add 192.168.1.11/24 dev eth0 || mx_die "second address on archive"

leak() { printf '{"tenant": "%s", "prefix": "%s", "next_tenant": "%s"}' "$1" "$2" "$3"; }
MX_ROUTES_JSON=$(
  sep=
  for t in hosp-a hosp-b hosp-c hosp-d archive; do echo -n "$sep$(leak "$t" 100.64.0.0/10 ix)"; sep=', '; done
  echo -n ", $(leak ix 100.64.1.0/24 hosp-a), $(leak ix 100.64.2.0/24 hosp-b), $(leak ix 100.64.3.0/24 hosp-c)"
  echo -n ", $(leak ix $POOL/32 hosp-d), $(leak ix 100.100.2.0/24 archive)"
)
config=$MX_TMP/config.json
mx_write_config "$config"
"$MX_PY" - "$config" "$PORT" "$POOL" "$POOL_LOW" "$POOL_HIGH" <<'EOF' || mx_die "could not write the NAT config"
import json, sys
path, port, pool, low, high = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = json.load(open(path))
c["tenants"].append({"name": "ix", "description": "The IX core", "core": True})
c["static_mappings"] = [
    {"tenant": "hosp-a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "hosp-b", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.2.0/24"},
    {"tenant": "hosp-c", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.3.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"},
]
c["napt_pools"] = [{"tenant": "hosp-d", "addresses": [pool], "port_low": low, "port_high": high}]
rule = lambda name, prio, src: {"name": name, "priority": prio, "from_tenant": src, "to_tenant": "archive",
                                "protocol": 6, "port_low": port, "port_high": port, "permit": True}
c["policy_rules"] = [rule("a-archive", 10, "hosp-a"), rule("b-archive", 20, "hosp-b"),
                     rule("d-archive", 30, "hosp-d")]
c["settings"] = {"max_sessions": 65536}
json.dump(c, open(path, "w"), indent=1)
EOF

# --- helpers ------------------------------------------------------------------------------------
counters() { timeout 20 "$CTL" -p "$MX_PREFIX" -o json counters; }
# drop_count REASON: the all-workers count of a drop reason (0 if absent).
drop_count() { mx_tele /medix/drops "$1" 2>/dev/null || echo 0; }
# probe HOST ADDR PORT [SRC]: one TCP connect attempt, 3 s.
probe() { mx_in "$1" "$MX_PY" "$ECHO" probe "$2" "$3" 3 ${4:+"$4"}; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
archive_lines() { wc -l <"$MX_TMP/serve-archive.log" | tr -d ' '; }
# send HOST TAG [SRC]: an echo transfer in the background, result in $MX_TMP/send-TAG.json.
send() { send_to "$ARCHIVE_CORE" "$MIB" "$@"; }
# send_to DST MIB HOST TAG [SRC[:SPORT]]: the same to another core address of the archive.
send_to() {
  mx_bg "$3" timeout 120 "$MX_PY" "$ECHO" send "$1" "$PORT" "$4" "$2" ${5:+"$5"} >"$MX_TMP/send-$4.json"
}

# --- start --------------------------------------------------------------------------------------
t_start=$(date +%s.%N)
if mx_check_config "$config"; then
  pass "config accepted by medix-dp --check (core tenant, 4 static mappings, a NAPT pool, 3 rules)"
else
  fail "config refused by medix-dp --check: $(tail -n 3 "$MX_TMP/check.log" | tr '\n' ' ')"
fi
if mx_start_dp "$config"; then
  pass "medix-dp ready: $(grep -m1 'medix-dp: ready' "$MX_DP_LOG")"
else
  fail "medix-dp did not start"
  finish
fi

# Each host's own gateway (no crossing): ARP and the local path work before anything else.
for h in "${MX_HOSTS[@]}"; do
  gw=${MX_GW_ADDR[$h]%/*}
  if mx_in "$h" ping -n -c 1 -W 2 "$gw" >/dev/null 2>&1 || mx_in "$h" ping -n -c 1 -W 2 "$gw" >/dev/null 2>&1; then
    pass "$h pings its gateway $gw"
  else
    fail "$h does not reach its gateway $gw"
  fi
done

: >"$MX_TMP/serve-archive.log"
mx_bg archive "$MX_PY" "$ECHO" serve "$ARCHIVE" "$PORT" "$MX_TMP/serve-archive.log"
: >"$MX_TMP/serve-archive2.log"
mx_bg archive "$MX_PY" "$ECHO" serve 192.168.1.11 "$PORT" "$MX_TMP/serve-archive2.log"
for i in $(seq 50); do
  [ "$(mx_in archive ss -Hltn "sport = :$PORT" | wc -l)" -ge 2 ] && break
  sleep 0.1
done

# --- hosp-a and hosp-b at the same time: same inside address, two core addresses ----------------
drops0=$(mx_tele /medix/drops)
# Meanwhile the policy keeps changing (rules that do not concern these flows): each change makes
# every session be checked again on its next packet; none may be lost or made anew. The churn
# is running (its first change applied) before the transfers start, and until they end.
PYTHONDONTWRITEBYTECODE=1 "$MX_PY" - "$MX_REPO/test/api" "unix:/var/run/dpdk/$MX_PREFIX/api.sock" \
  "$MX_TMP/churn.stop" "$MX_TMP/churn.ready" >"$MX_TMP/churn.json" 2>"$MX_TMP/churn.err" <<'EOF' &
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import medixapi as api
from medixapi import pb, create, delete
c = api.Client(sys.argv[2])
n, errors, t_end = 0, [], time.monotonic() + 60
while not os.path.exists(sys.argv[3]) and time.monotonic() < t_end:
    rule = pb.PolicyRule(name="churn-%d" % n, priority=500 + n % 50, from_tenant="hosp-c", to_tenant="archive",
                         permit=False)
    for ops in ([create(rule)], [delete(rule)]):
        try:
            c.apply(ops)
            n += 1
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))
    if n == 2:
        open(sys.argv[4], "w").close()
print(json.dumps({"transactions": n, "errors": errors[:3]}))
EOF
churn_pid=$!
for _ in $(seq 200); do
  if [ -e "$MX_TMP/churn.ready" ] || ! kill -0 "$churn_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
pids=()
t0=$(date +%s.%N)
for i in $(seq "$CONNS"); do
  for t in hosp-a hosp-b; do
    send "$t-lan" "$t-$i"; pids+=("$MX_LAST_PID")
  done
done
for p in "${pids[@]}"; do wait "$p"; done
t1=$(date +%s.%N)
touch "$MX_TMP/churn.stop"
wait "$churn_pid"
echo "    $((2 * CONNS)) echo transfers of $MIB MiB (each way) took $(elapsed "$t0" "$t1") s"
"$MX_PY" - "$MX_TMP/churn.json" <<'EOF' | tally
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    d = {"transactions": 0, "errors": [str(e)]}
ok = d["transactions"] >= 10 and not d["errors"]
print(("PASS " if ok else "FAIL ") + "%d policy transactions applied during the transfers%s"
      % (d["transactions"], "" if ok else ": %s" % d["errors"]))
EOF
sleep 0.5

"$MX_PY" - "$MX_TMP" "$CONNS" <<'EOF' | tally
import json, sys
tmp, conns = sys.argv[1], int(sys.argv[2])
want_core = {"hosp-a": "100.64.1.5", "hosp-b": "100.64.2.5"}
check = lambda ok, text: print(("PASS " if ok else "FAIL ") + text)
served = {}
for line in open(f"{tmp}/serve-archive.log"):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    served.setdefault(r["tag"], []).append(r)
peers = set()
for t in ("hosp-a", "hosp-b"):
    for i in range(1, conns + 1):
        tag = f"{t}-{i}"
        try:
            s = json.load(open(f"{tmp}/send-{tag}.json"))
        except (OSError, ValueError) as e:
            check(False, f"{tag}: no result from the sender ({e})")
            continue
        if "sha256" not in s:
            check(False, f"{tag}: the transfer failed: {s}")
            continue
        ok = s["echo_sha256"] == s["sha256"] and s["echo_bytes"] == s["bytes"]
        check(ok, f"{tag}: {s['bytes']} bytes echoed back to {t} intact (sha256 {s['sha256'][:12]}.., "
                  f"{s['seconds']} s)" + ("" if ok else f": got {s['echo_bytes']} bytes, sha256 {s['echo_sha256'][:12]}.."))
        rs = served.get(tag, [])
        if len(rs) != 1:
            check(False, f"{tag}: the archive logged {len(rs)} connections with this tag: {rs}")
            continue
        r = rs[0]
        addr, port = r["peer"].rsplit(":", 1)
        lport = s["local"].rsplit(":", 1)[1]
        peers.add(addr)
        check(r["sha256"] == s["sha256"] and r["bytes"] == s["bytes"] and "error" not in r,
              f"{tag}: the archive received exactly {t}'s bytes ({r['bytes']}, sha256 equal)")
        check(addr == want_core[t] and port == lport,
              f"{tag}: the archive saw {r['peer']} (want {want_core[t]}:{lport}: {t}'s core address, port kept; "
              f"the sender is {s['local']} in {t})")
check(peers == set(want_core.values()),
      f"the archive saw exactly two distinct core addresses for the two 10.0.0.5 hosts: {sorted(peers)}")
check(all(not r["tag"].startswith(("hosp-c", "hosp-d")) for rs in served.values() for r in rs),
      "the archive saw no other connection")
EOF

# --- sessions (ListSessions) of the two hospitals ------------------------------------------------
sessions_json=$MX_TMP/sessions.json
PYTHONDONTWRITEBYTECODE=1 "$MX_PY" - "$MX_REPO/test/api" "unix:/var/run/dpdk/$MX_PREFIX/api.sock" >"$sessions_json" 2>"$MX_TMP/sessions.err" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
import medixapi as api
from google.protobuf import json_format
c = api.Client(sys.argv[2])
out = {}
for t in ("hosp-a", "hosp-b", "hosp-c", "hosp-d"):
    r = c.stub.ListSessions(api.dp.ListSessionsRequest(tenant=t), timeout=10)
    out[t] = [json_format.MessageToDict(s, preserving_proto_field_name=True) for s in r.sessions]
print(json.dumps(out))
EOF
if [ -s "$sessions_json" ]; then
  "$MX_PY" - "$sessions_json" "$MX_TMP" "$CONNS" "$PORT" <<'EOF' | tally
import json, sys
d, tmp, conns, port = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), sys.argv[4]
check = lambda ok, text: print(("PASS " if ok else "FAIL ") + text)
core = {"hosp-a": "100.64.1.5", "hosp-b": "100.64.2.5"}
rule = {"hosp-a": "a-archive", "hosp-b": "b-archive"}
for t in ("hosp-a", "hosp-b"):
    mine = [s for s in d[t] if s.get("tenant") == t]
    for i in range(1, conns + 1):
        try:
            local = json.load(open(f"{tmp}/send-{t}-{i}.json"))["local"]
        except (OSError, ValueError, KeyError):
            continue
        lport = local.rsplit(":", 1)[1]
        want = {"protocol": 6, "tenant": t, "source": f"10.0.0.5:{lport}", "destination": f"100.100.2.10:{port}",
                "peer_tenant": "archive", "translated_source": f"{core[t]}:{lport}",
                "translated_destination": f"192.168.1.10:{port}", "rule": rule[t]}
        found = [s for s in mine if s.get("source") == want["source"]]
        ok = len(found) == 1 and all(found[0].get(k) == v for k, v in want.items())
        check(ok, f"{t}-{i}: one session {want['source']} -> {want['destination']} as "
                  f"{want['translated_source']} -> {want['translated_destination']}, rule {rule[t]}"
                  + ("" if ok else f"; found {found}"))
lcores = sorted({s.get("lcore", 0) for t in ("hosp-a", "hosp-b") for s in d[t]})
print(f"    sessions of hosp-a and hosp-b are owned by lcores {lcores}")
check(d["hosp-c"] == [] or all(s.get("tenant") != "hosp-c" for s in d["hosp-c"]),
      f"no session from hosp-c yet: {d['hosp-c'][:2]}")
EOF
else
  fail "ListSessions: $(tail -n 3 "$MX_TMP/sessions.err" | tr '\n' ' ')"
fi

# --- hosp-c: no policy rule, nothing gets through -------------------------------------------------
n0=$(archive_lines)
denied0=$(drop_count policy_denied)
res=$(probe hosp-c-lan "$ARCHIVE_CORE" "$PORT")
if [ "$res" = timeout ]; then pass "hosp-c: TCP connect to $ARCHIVE_CORE:$PORT times out (no rule permits it)"
else fail "hosp-c: TCP connect to $ARCHIVE_CORE:$PORT should time out, got: $res"; fi
out=$(mx_in hosp-c-lan ping -n -c 1 -W 1 "$ARCHIVE_CORE" 2>&1)
if grep -q ' 0 received' <<<"$out"; then pass "hosp-c: ping $ARCHIVE_CORE unanswered"
else fail "hosp-c: ping $ARCHIVE_CORE: $(grep -E 'received|From' <<<"$out" | head -2 | tr '\n' ' ')"; fi
n1=$(archive_lines)
if [ "$n0" = "$n1" ]; then pass "the archive saw no connection from hosp-c"
else fail "the archive logged $((n1 - n0)) new connection(s) during hosp-c's attempts: $(tail -n $((n1 - n0)) "$MX_TMP/serve-archive.log")"; fi
denied1=$(drop_count policy_denied)
# The SYN, its retransmissions (1 or 2 in 3 s) and the echo request: each denied as a new flow.
if [ "$((denied1 - denied0))" -ge 3 ]; then pass "drops: policy_denied +$((denied1 - denied0)) for hosp-c's attempts"
else fail "drops: policy_denied went $denied0 -> $denied1 during hosp-c's attempts (want +3 or more)"; fi

# --- what the rules do not name: another port, ICMP, and the other way round ----------------------
res=$(probe hosp-a-lan "$ARCHIVE_CORE" 5002)
if [ "$res" = timeout ]; then pass "hosp-a: TCP to $ARCHIVE_CORE:5002 (no rule for that port) times out"
else fail "hosp-a: TCP to $ARCHIVE_CORE:5002 should be denied (a reset from the archive means it got through), got: $res"; fi
out=$(mx_in hosp-a-lan ping -n -c 1 -W 1 "$ARCHIVE_CORE" 2>&1)
if grep -q ' 0 received' <<<"$out"; then pass "hosp-a: ping $ARCHIVE_CORE (rules are TCP only) unanswered"
else fail "hosp-a: ping $ARCHIVE_CORE should be denied: $(grep -E 'received|From' <<<"$out" | head -2 | tr '\n' ' ')"; fi
res=$(probe archive 100.64.1.5 "$PORT")
if [ "$res" = timeout ]; then pass "archive: TCP to hosp-a's 100.64.1.5:$PORT (no rule from the archive) times out"
else fail "archive: TCP to 100.64.1.5:$PORT should be denied, got: $res"; fi

# --- hosp-d: NAPT, two inside hosts behind one pool address --------------------------------------
n0=$(archive_lines)
pids=()
t0=$(date +%s.%N)
send hosp-d-lan hosp-d-1 10.0.0.5; pids+=("$MX_LAST_PID")
send hosp-d-lan hosp-d-2 10.0.0.5; pids+=("$MX_LAST_PID")
send hosp-d-lan hosp-d-3 10.0.0.6; pids+=("$MX_LAST_PID")
# One endpoint, 10.0.0.6:40006, towards both archive servers at once.
send_to 100.100.2.10 1 hosp-d-lan hosp-d-eim1 10.0.0.6:40006; pids+=("$MX_LAST_PID")
send_to 100.100.2.11 1 hosp-d-lan hosp-d-eim2 10.0.0.6:40006; pids+=("$MX_LAST_PID")
for p in "${pids[@]}"; do wait "$p"; done
t1=$(date +%s.%N)
echo "    3 NAPT echo transfers of $MIB MiB and 2 of 1 MiB took $(elapsed "$t0" "$t1") s"
sleep 0.5
workers=$(sed -nE 's/.*medix-dp: ready \(.*, ([0-9]+) workers?\).*/\1/p' "$MX_DP_LOG" | head -1)
"$MX_PY" - "$MX_TMP" "$POOL" "$POOL_LOW" "$POOL_HIGH" "${workers:-1}" <<'EOF' | tally
import json, sys
tmp, pool, low, high, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
check = lambda ok, text: print(("PASS " if ok else "FAIL ") + text)
served = {}
for line in open(f"{tmp}/serve-archive.log"):
    try:
        r = json.loads(line)
        served.setdefault(r["tag"], []).append(r)
    except ValueError:
        pass
ports = []
for i, src in ((1, "10.0.0.5"), (2, "10.0.0.5"), (3, "10.0.0.6")):
    tag = f"hosp-d-{i}"
    try:
        s = json.load(open(f"{tmp}/send-{tag}.json"))
    except (OSError, ValueError) as e:
        check(False, f"{tag}: no result from the sender ({e})")
        continue
    if "sha256" not in s:
        check(False, f"{tag} (from {src}): the transfer failed: {s}")
        continue
    ok = s["echo_sha256"] == s["sha256"] and s["echo_bytes"] == s["bytes"]
    check(ok, f"{tag}: {s['bytes']} bytes from {s['local']} echoed back intact through NAPT ({s['seconds']} s)")
    rs = served.get(tag, [])
    if len(rs) != 1:
        check(False, f"{tag}: the archive logged {len(rs)} connections with this tag: {rs}")
        continue
    r = rs[0]
    addr, port = r["peer"].rsplit(":", 1)
    ports.append(int(port))
    check(r["sha256"] == s["sha256"] and r["bytes"] == s["bytes"],
          f"{tag}: the archive received exactly its bytes ({r['bytes']}, sha256 equal)")
    check(addr == pool and low <= int(port) <= high and port != s["local"].rsplit(":", 1)[1],
          f"{tag}: {s['local']} seen by the archive as {r['peer']} (want {pool}, a port in {low}..{high})")
check(len(ports) == 3 and len(set(ports)) == 3, f"three NAPT connections, three distinct pool ports: {ports}")
if len(ports) == 3:
    # One inside host is always owned by one worker q, which hands out port_low + q + k*W.
    check((ports[0] - low) % workers == (ports[1] - low) % workers,
          f"10.0.0.5's two pool ports {ports[:2]} come from one worker's share ({workers} workers)")
for line in open(f"{tmp}/serve-archive2.log"):
    served.setdefault(json.loads(line)["tag"], []).append(json.loads(line))
eim = {}
for tag, dst in (("hosp-d-eim1", "100.100.2.10"), ("hosp-d-eim2", "100.100.2.11")):
    try:
        s = json.load(open(f"{tmp}/send-{tag}.json"))
        rs = served.get(tag, [])
        ok = s.get("echo_sha256") == s.get("sha256") and len(rs) == 1 and rs[0]["sha256"] == s["sha256"]
        check(ok, f"{tag}: 10.0.0.6:40006 -> {dst}:5001 echoed intact, seen as {[r['peer'] for r in rs]}"
                  + ("" if ok else f": {s}"))
        if rs:
            eim[dst] = rs[0]["peer"]
    except (OSError, ValueError, KeyError) as e:
        check(False, f"{tag}: {e!r}")
check(len(eim) == 2 and len(set(eim.values())) == 1 and list(eim.values())[0].startswith(pool + ":"),
      f"endpoint-independent mapping: 10.0.0.6:40006 is one pool endpoint towards both servers: {eim}")
EOF
out=$(mx_in hosp-d-lan ping -n -c 1 -W 1 -I 10.0.0.6 "$ARCHIVE_CORE" 2>&1)
if grep -q ' 0 received' <<<"$out"; then pass "hosp-d: ping $ARCHIVE_CORE (rules are TCP only) unanswered"
else fail "hosp-d: ping $ARCHIVE_CORE should be denied: $(grep -E 'received|From' <<<"$out" | head -2 | tr '\n' ' ')"; fi
# Unsolicited, towards the pool: no NAPT mapping for that port.
res=$(probe archive "$POOL" "$PORT")
if [ "$res" = timeout ]; then pass "archive: TCP to the pool address $POOL:$PORT (no mapping) times out"
else fail "archive: TCP to $POOL:$PORT should be dropped, got: $res"; fi

# --- counters: medixctl counters (nat[], policy_rules[]) and drops ---------------------------------
counters >"$MX_TMP/counters.json" 2>"$MX_TMP/counters.err"
mx_tele /medix/drops >"$MX_TMP/drops.json"
"$MX_PY" - "$MX_TMP" "$CONNS" "$MIB" "$drops0" <<'EOF' | tally
import json, sys
tmp, conns, mib, drops0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4] or "{}")
check = lambda ok, text: print(("PASS " if ok else "FAIL ") + text)
try:
    d = json.load(open(f"{tmp}/counters.json"))
except (OSError, ValueError) as e:
    check(False, f"medixctl -o json counters: {e}: {open(tmp + '/counters.err').read()[-300:]}")
    sys.exit()
nat = {n["tenant"]: n for n in d.get("nat", [])}
rules = {r["name"]: r for r in d.get("policy_rules", [])}
g = lambda t, k: int(nat.get(t, {}).get(k, 0))
segs = int(conns * mib * 2**20 / 1448)   # packets each hospital sent at the least (MSS 1448)
for t in ("hosp-a", "hosp-b"):
    check(conns <= g(t, "sessions_created") <= conns + 2,
          f"nat {t}: sessions_created {g(t, 'sessions_created')} (its {conns} transfers; denied flows make none)")
    check(g(t, "translated") >= segs, f"nat {t}: translated {g(t, 'translated')} >= {segs} (its uploads)")
check(g("hosp-c", "sessions_created") == 0 and g("hosp-c", "translated") == 0,
      f"nat hosp-c: no session, nothing translated ({nat.get('hosp-c')})")
check(g("hosp-c", "policy_denied") >= 2, f"nat hosp-c: policy_denied {g('hosp-c', 'policy_denied')} (TCP and ping)")
check(g("hosp-a", "policy_denied") >= 2, f"nat hosp-a: policy_denied {g('hosp-a', 'policy_denied')} (port 5002, ping)")
check(g("archive", "policy_denied") >= 1, f"nat archive: policy_denied {g('archive', 'policy_denied')} (to 100.64.1.5)")
check(g("hosp-d", "sessions_created") >= 5 and g("hosp-d", "translated") >= int(3 * mib * 2**20 / 1448),
      f"nat hosp-d: sessions_created {g('hosp-d', 'sessions_created')}, translated {g('hosp-d', 'translated')}")
# Five sessions, four inside endpoints (10.0.0.6:40006 shares one mapping), all still held
# (transitory timeout 240 s).
check(g("hosp-d", "sessions") == 5 and g("hosp-d", "napt_mappings") == 4,
      f"nat hosp-d: napt_mappings {g('hosp-d', 'napt_mappings')} (want 4) with {g('hosp-d', 'sessions')} sessions (want 5)")
check(g("hosp-d", "pool_exhausted") == 0 and g("hosp-d", "no_mapping") == 0,
      f"nat hosp-d: no pool_exhausted, no no_mapping")
for name, want in (("a-archive", conns), ("b-archive", conns), ("d-archive", 5)):
    m = int(rules.get(name, {}).get("matched", 0))
    check(want <= m <= want + 4, f"policy rule {name}: matched {m} (want {want}, a retransmitted SYN at most adds)")
drops = json.load(open(f"{tmp}/drops.json"))
delta = {k: v - drops0.get(k, 0) for k, v in drops.items() if isinstance(v, int) and v - drops0.get(k, 0)}
bad = {k: v for k, v in delta.items() if k.startswith("nat_") and k != "nat_no_session"}
check(not bad, f"no nat_* drops but nat_no_session (the archive's unsolicited SYNs): {delta}")
check(delta.get("nat_no_session", 0) >= 1, f"drops: nat_no_session {delta.get('nat_no_session', 0)} (archive -> pool)")
EOF

# --- stop ---------------------------------------------------------------------------------------
diagnose
rc=0
mx_stop_dp || rc=$?
if [ $rc -eq 0 ]; then pass "medix-dp exited 0 on SIGTERM"
else fail "medix-dp exited $rc on SIGTERM"; fi
echo "    whole run: $(elapsed "$t_start" "$(date +%s.%N)") s"
finish
