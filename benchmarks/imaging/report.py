#!/usr/bin/python3
"""Collects benchmarks/imaging/run's measurements into imaging.json and draws imaging.png.

Each path's figures go against the direct reference's at the same concurrency: ratio =
Gbit/s of the path / Gbit/s of direct. Goals (issue 16): plain and across the core >= 0.9,
medix-to-medix ESP >= 0.8.

The qos path is a section of its own ("qos"): the studies on a link shaped to a contract, alone,
beside a bulk transfer with the shaper's classes on, and beside it with the classes off, each
against the others at the same concurrency. A run that measured only qos (and the direct
reference) keeps the other paths of the imaging.json it finds, measured before, and adds its
section with its own date.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess

GOALS = {"plain": 0.9, "core-static": 0.9, "core-napt": 0.9, "esp-gcm": 0.8, "esp-cbc": 0.8,
         "esp-strongswan": None}
ORDER = ["direct", "vdev-ceiling", "plain", "core-static", "core-napt", "esp-gcm", "esp-cbc", "esp-strongswan"]
LABELS = {
    "direct": "direct veth\n(reference)", "vdev-ceiling": "af_packet ceiling\n(testpmd io)",
    "plain": "medix-dp\none tenant",
    "core-static": "across the core\nstatic mapping", "core-napt": "across the core\nNAPT",
    "esp-gcm": "ESP medix-medix\nAES-GCM-128", "esp-cbc": "ESP medix-medix\nCBC+SHA-256",
    "esp-strongswan": "ESP from\nstrongSwan gw",
}


def git_rev(root):
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return None


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replot", help="draw imaging.png again from an imaging.json; nothing else")
    ap.add_argument("--results")
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--paths")
    ap.add_argument("--concurrency")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--studies")
    ap.add_argument("--quick", default="0")
    ap.add_argument("--binary", default="")
    ap.add_argument("--skipped", action="append", default=[])
    ap.add_argument("--qos-mbit", type=int, default=200)
    ap.add_argument("--qos-queue", type=int, default=256)
    ap.add_argument("--qos-point", help="PREFIX of one qos point's files: print its line; nothing else")
    a = ap.parse_args()
    if a.qos_point:
        print(qos_line(qos_point(a.qos_point, a.qos_mbit)))
        return 0
    if a.replot:
        out = load(a.replot)
        conc = sorted({x["concurrency"] for e in out["paths"].values() for x in e["points"]})
        if out.get("qos"):
            qos_table(out["qos"])
        plot(out, conc, os.path.join(os.path.dirname(a.replot), "imaging.png"))
        return 0
    conc = [int(c) for c in a.concurrency.split(",")]
    paths = [p for p in ORDER if p == "direct" or p in a.paths.split(",")]
    with_qos = "qos" in a.paths.split(",")
    studies = load(a.studies)
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    out = {
        "benchmark": "imaging",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_rev(root), "binary": a.binary, "cpu_model": cpu, "cpus": os.cpu_count(),
        "kernel": platform.release(), "quick": a.quick == "1", "workers": a.workers,
        "method": "dcmtk storescu -> storescp --fork (max PDU 131072, bit-preserving, into RAM), "
                  "one association per study, C concurrent associations; Gbit/s = DICOM object bytes "
                  "x 8 / wall time of all studies at that concurrency; ratio = path / direct at the "
                  "same concurrency, measured in the same invocation; cycles_per_packet = medix-dp "
                  "worker busy TSC cycles (empty polls excluded) / packets received, from GetRuntime "
                  "before and after; iperf3 = one TCP stream over the same path (its ceiling)",
        "studies": {k: {"modality": s["modality"], "shape": s["shape"], "objects": len(s["objects"]),
                        "bytes": s["bytes"]} for k, s in (studies or {}).get("studies", {}).items()},
        "goals": {k: v for k, v in GOALS.items() if v},
        "not_measured": {},
        "paths": {},
    }
    for s in a.skipped:
        name, _, why = s.partition("=")
        out["not_measured"][name] = why
    out["rounds"] = a.rounds
    rounds = [os.path.join(a.results, "r%d" % r) for r in range(1, a.rounds + 1)]
    ref = {}
    for p in paths:
        entry = {"points": []}
        best_iperf = None
        for rdir in rounds:
            iperf = load(os.path.join(rdir, "%s-iperf3.json" % p))
            try:
                g = iperf["end"]["sum_received"]["bits_per_second"] / 1e9
            except (TypeError, KeyError):
                continue
            entry.setdefault("iperf3_gbit_s_rounds", []).append(round(g, 3))
            if best_iperf is None or g > best_iperf[0]:
                best_iperf = (g, iperf["end"]["sum_sent"].get("retransmits"))
        entry["iperf3_gbit_s"] = round(best_iperf[0], 3) if best_iperf else None
        entry["iperf3_retransmits"] = best_iperf[1] if best_iperf else None
        for c in conc:
            runs = [d for d in (load(os.path.join(rdir, "%s-c%d.json" % (p, c))) for rdir in rounds) if d]
            if not runs:
                continue
            d = max(runs, key=lambda x: x["gbit_s"])  # the best round's point, whole
            d["gbit_s_rounds"] = [x["gbit_s"] for x in runs]
            d["byte_identical"] = all(x["byte_identical"] for x in runs)
            if p == "direct":
                ref[c] = d["gbit_s"]
                end = load(os.path.join(a.results, "end", "direct-end-c%d.json" % c))
                if end:  # measured once more after every round: how far the machine drifted
                    d["gbit_s_at_end"] = end["gbit_s"]
            d["ratio_to_direct"] = round(d["gbit_s"] / ref[c], 3) if ref.get(c) else None
            entry["points"].append(d)
        if not entry["points"]:
            continue
        best = max(x["ratio_to_direct"] or 0 for x in entry["points"])
        worst = min(x["ratio_to_direct"] or 0 for x in entry["points"])
        entry["goal"] = GOALS.get(p)
        if entry["goal"]:
            entry["goal_met_all_concurrency"] = worst >= entry["goal"]
        entry["ratio_min"], entry["ratio_max"] = worst, best
        entry["byte_identical"] = all(x["byte_identical"] for x in entry["points"])
        out["paths"][p] = entry
    for p, entry in out["paths"].items():
        if entry.get("goal") and not entry.get("goal_met_all_concurrency"):
            entry["limits"] = limits(out, p)
    if with_qos:
        qos = qos_section(a, rounds, conc)
        qos.update(date=out["date"], git=out["git"], binary=out["binary"], quick=out["quick"],
                   loadavg_at_end=[round(x, 2) for x in os.getloadavg()])
        qos["direct_same_run"] = {x["concurrency"]: x["gbit_s"] for x in out["paths"].get("direct", {}).get("points", [])}
        old = load(os.path.join(a.out, "imaging.json"))
        if old and len(paths) == 1 and len(old.get("paths", {})) > 1:
            # Only qos (and the reference) measured: the other paths stay as measured before.
            old.get("not_measured", {}).pop("qos", None)
            out = old
        out["qos"] = qos
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "imaging.json"), "w") as f:
        json.dump(out, f, indent=1)
    table(out, conc)
    if out.get("qos"):
        qos_table(out["qos"])
    plot(out, conc, os.path.join(a.out, "imaging.png"))
    return 0 if all(e["byte_identical"] for e in out["paths"].values()) and \
        out.get("qos", {}).get("byte_identical", True) else 1


QOS_VARIANTS = ("alone", "classes", "no-classes")
QOS_LABELS = {"alone": "shaped, alone", "classes": "beside bulk,\nclasses on",
              "no-classes": "beside bulk,\nclasses off"}


def qos_point(prefix, contract_mbit):
    """One qos point: the DICOM load, the shaper's classes over it (medix-dp's counters right
    before and after the transfers), the bulk's iperf3."""
    d = load(prefix + ".json")
    if not d:
        return None
    keep = ("concurrency", "studies", "bytes", "wall_s", "gbit_s", "studies_per_min", "study_s_p50",
            "study_s_p99", "study_s_by_kind", "failed_transfers", "verify", "byte_identical", "cpu_busy", "medix")
    pt = {k: d[k] for k in keep if k in d}
    pt["mbit_s"] = round(d["gbit_s"] * 1000, 1)
    try:
        with open(prefix + "-counters.jsonl") as f:
            c0, c1 = (json.loads(line) for line in f.read().splitlines()[:2])
    except (OSError, ValueError):
        c0 = c1 = None
    if c0 and c1:
        dt = (int(c1["timestamp_ns"]) - int(c0["timestamp_ns"])) / 1e9
        before = {r["class"]: r for r in c0.get("shaper_classes", []) if r.get("name") == "archive-link"}
        classes = {}
        for r in c1.get("shaper_classes", []):
            if r.get("name") != "archive-link":
                continue
            b = before.get(r["class"], {})
            delta = lambda k: int(r.get(k, 0)) - int(b.get(k, 0))  # noqa: E731
            classes[r["class"]] = {"sent_mbit_s": round(delta("sent_bytes") * 8 / dt / 1e6, 1),
                                   "dropped": delta("dropped")}
        pt["shaper_classes"] = classes
        pt["shaper_sent_mbit_s"] = round(sum(c["sent_mbit_s"] for c in classes.values()), 1)
        if "tcp_bytes_received" in c1:
            pt["bulk_mbit_s"] = round((c1["tcp_bytes_received"] - c0.get("tcp_bytes_received", 0)) * 8 / dt / 1e6, 1)
        if "imaging" in classes:
            pt["imaging_class_of_guarantee"] = round(classes["imaging"]["sent_mbit_s"] / (contract_mbit / 2), 3)
    bulk = load(prefix + "-bulk.json")
    if bulk:
        try:
            pt["bulk_iperf3_sent_mbit_s"] = round(bulk["end"]["sum_sent"]["bits_per_second"] / 1e6, 1)
            pt["bulk_retransmits"] = bulk["end"]["sum_sent"].get("retransmits")
        except (KeyError, TypeError):
            pass
    else:
        pt.pop("bulk_mbit_s", None)  # alone: no bulk ran
    return pt


def qos_line(pt):
    if not pt:
        return "no measurement"
    line = "imaging %.1f Mbit/s of DICOM" % pt["mbit_s"]
    for k, c in pt.get("shaper_classes", {}).items():
        line += "; class %s %.1f Mbit/s of frames, %d dropped" % (k, c["sent_mbit_s"], c["dropped"])
    if "imaging_class_of_guarantee" in pt:
        line += "; imaging class %.2fx its guarantee" % pt["imaging_class_of_guarantee"]
    if pt.get("bulk_mbit_s") is not None:
        line += "; bulk %.1f Mbit/s received" % pt["bulk_mbit_s"]
    return line


def qos_section(a, rounds, conc):
    q = {
        "contract_mbit_s": a.qos_mbit, "imaging_guarantee_mbit_s": a.qos_mbit / 2, "queue_limit": a.qos_queue,
        "method": "the studies from hosp-s across the core (static mapping) to the archive, whose interface "
                  "medix-dp shapes to the contract (Mbit/s of Ethernet frames, burst 50 ms). alone: no other "
                  "traffic. classes: iperf3 from hosp-n (NAPT), 4 TCP streams, started 2 s before the studies "
                  "and stopped when they end, the shaper's class imaging (tenant hosp-s) guaranteed half the "
                  "contract, weight 1, class bulk (the rest) weight 1, each a tail-drop queue of queue_limit "
                  "packets. no-classes: the same bulk, one class (one tail-drop queue of 2 x queue_limit). mbit_s/gbit_s: DICOM object bytes x 8 / wall time; "
                  "shaper_classes: Mbit/s of frames each class sent over the studies' time (GetCounters right "
                  "before the first and after the last study); bulk_mbit_s: what the bulk's TCP connections "
                  "received at the archive over the same time (ss -ti bytes_received); "
                  "bulk_iperf3_sent_mbit_s: iperf3's own figure over its whole run (from 2 s before the studies); "
                  "best of the rounds by the studies' rate",
        "shaper": {"classes": [{"name": "imaging", "tenant": "hosp-s", "rate_mbit_s": a.qos_mbit / 2, "weight": 1,
                                "queue_limit": a.qos_queue},
                               {"name": "bulk", "weight": 1, "queue_limit": a.qos_queue}],
                   "no_classes": [{"name": "all", "weight": 1, "queue_limit": 2 * a.qos_queue}]},
        "variants": {},
    }
    for v in QOS_VARIANTS:
        points = []
        for c in conc:
            runs = [p for p in (qos_point(os.path.join(r, "qos-%s-c%d" % (v, c)), a.qos_mbit) for r in rounds) if p]
            if not runs:
                continue
            pt = max(runs, key=lambda x: x["gbit_s"])
            pt["mbit_s_rounds"] = [x["mbit_s"] for x in runs]
            pt["byte_identical"] = all(x["byte_identical"] for x in runs)
            points.append(pt)
        if points:
            q["variants"][v] = {"points": points}
    alone = {x["concurrency"]: x for x in q["variants"].get("alone", {}).get("points", [])}
    for v in ("classes", "no-classes"):
        for x in q["variants"].get(v, {}).get("points", []):
            ref = alone.get(x["concurrency"])
            if ref and ref["gbit_s"]:
                x["ratio_to_alone"] = round(x["gbit_s"] / ref["gbit_s"], 3)
                x["p99_ratio_to_alone"] = round(x["study_s_p99"] / ref["study_s_p99"], 2)
    q["byte_identical"] = all(x["byte_identical"] for e in q["variants"].values() for x in e["points"])
    return q


def qos_table(q):
    print()
    print("qos: contract %d Mbit/s, imaging guaranteed %d" % (q["contract_mbit_s"], q["imaging_guarantee_mbit_s"]))
    print("%-11s %4s %9s %8s %9s %8s %8s %11s %11s %9s %s" % (
        "variant", "conc", "DICOM Mb/s", "x alone", "studies/m", "p50 s", "p99 s", "img class", "x guarant.",
        "bulk Mb/s", "identical"))
    for v, e in q["variants"].items():
        for x in e["points"]:
            img = x.get("shaper_classes", {}).get("imaging", {}).get("sent_mbit_s")
            print("%-11s %4d %9.1f %8s %9.1f %8.2f %8.2f %11s %11s %9s %s" % (
                v, x["concurrency"], x["mbit_s"], "%.2f" % x["ratio_to_alone"] if "ratio_to_alone" in x else "-",
                x["studies_per_min"], x["study_s_p50"], x["study_s_p99"], "%.1f" % img if img is not None else "-",
                "%.2f" % x["imaging_class_of_guarantee"] if "imaging_class_of_guarantee" in x else "-",
                "%.1f" % x["bulk_mbit_s"] if x.get("bulk_mbit_s") is not None else "-", x["byte_identical"]))


def limits(out, p):
    """What the measurements say limits a path that misses its goal (at the highest
    concurrency, where the load is heaviest)."""
    e = out["paths"][p]
    pt = max(e["points"], key=lambda x: x["concurrency"])
    facts, why = {}, []
    ceil = out["paths"].get("vdev-ceiling")
    if ceil:
        cp = next((x for x in ceil["points"] if x["concurrency"] == pt["concurrency"]), None)
        if cp:
            facts["vdev_ceiling_ratio"] = cp["ratio_to_direct"]
            facts["ratio_to_vdev_ceiling"] = round(pt["gbit_s"] / cp["gbit_s"], 3)
            if cp["ratio_to_direct"] and cp["ratio_to_direct"] < e["goal"]:
                why.append("the virtual ports themselves: testpmd io-forward (no processing) on the same "
                           "af_packet vdevs reaches %.2fx direct; this path reaches %.2fx of that ceiling"
                           % (cp["ratio_to_direct"], facts["ratio_to_vdev_ceiling"]))
        if ceil.get("iperf3_gbit_s") and e.get("iperf3_gbit_s"):
            facts["iperf3_ratio_to_vdev_ceiling"] = round(e["iperf3_gbit_s"] / ceil["iperf3_gbit_s"], 3)
    for node, m in pt.get("medix", {}).items():
        st = m.get("stages", {})
        total = sum(st.values()) or 1
        io = st.get("rx", 0) + st.get("tx", 0)
        facts[node] = {"busy_share": m["busy_share"], "cycles_per_packet": m["cycles_per_packet"],
                       "rx_tx_stage_share": round(io / total, 3)}
        if m["busy_share"] is not None and m["busy_share"] < 0.9:
            why.append("%s's worker is not saturated (busy %.0f%%); of its busy cycles per packet, %.0f%% are the "
                       "rx and tx stages (af_packet: the copy and the sendto() per burst, in which the kernel "
                       "delivers the frame through the veth to the receiving side)" % (node, 100 * m["busy_share"],
                                                                                     100 * io / total))
        elif m["busy_share"] is not None:
            why.append("%s's worker is saturated (busy %.0f%%, %.0f cycles per packet, %.0f%% in rx/tx)"
                       % (node, 100 * m["busy_share"], m["cycles_per_packet"], 100 * io / total))
    cpus = pt.get("cpu_busy", {})
    facts["cpu_busy"] = cpus
    if cpus and min(cpus.values()) >= 0.95:
        why.append("every CPU was busy during the transfer (%s): the hosts' kernels, dcmtk, the busy-polling "
                   "worker(s) and whatever else runs on the machine share %d CPUs"
                   % (", ".join("%s %.0f%%" % (k, 100 * v) for k, v in cpus.items()), len(cpus)))
    for k, v in pt.get("process_cpu", {}).items():
        facts[k + "_cpu"] = v
        why.append("%s used %.0f%% of a CPU" % (k, 100 * v))
    return {"at_concurrency": pt["concurrency"], "measured": facts, "reading": why}


def table(out, conc):
    print()
    print("%-15s %4s %8s %7s %9s %8s %8s %10s %6s %8s %s" % (
        "path", "conc", "Gbit/s", "ratio", "studies/m", "p50 s", "p99 s", "cyc/pkt", "busy", "iperf3", "identical"))
    for p, e in out["paths"].items():
        for x in e["points"]:
            m = list(x.get("medix", {}).values())
            cyc = "/".join("%.0f" % v["cycles_per_packet"] for v in m if v["cycles_per_packet"]) or "-"
            busy = "/".join("%.0f%%" % (100 * v["busy_share"]) for v in m if v["busy_share"] is not None) or "-"
            print("%-15s %4d %8.3f %7s %9.1f %8.2f %8.2f %10s %6s %8s %s" % (
                p, x["concurrency"], x["gbit_s"], "%.3f" % x["ratio_to_direct"] if x["ratio_to_direct"] else "-",
                x["studies_per_min"], x["study_s_p50"], x["study_s_p99"], cyc, busy,
                "%.2f" % e["iperf3_gbit_s"] if e.get("iperf3_gbit_s") else "-", x["byte_identical"]))


def plot(out, conc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(out["paths"])
    q = out.get("qos")
    if q and q.get("variants"):
        fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(21, 6), gridspec_kw={"width_ratios": [3, 1.3, 1.9]})
        plot_qos(ax3, q)
    else:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [3, 1.3]})
    width = 0.8 / max(1, len(conc))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for j, c in enumerate(conc):
        xs, ys, labels = [], [], []
        for i, p in enumerate(names):
            pt = next((x for x in out["paths"][p]["points"] if x["concurrency"] == c), None)
            if not pt:
                continue
            xs.append(i + (j - (len(conc) - 1) / 2) * width)
            ys.append(pt["gbit_s"])
            labels.append(("%.2f" % pt["ratio_to_direct"]) if pt["ratio_to_direct"] else "")
        bars = ax.bar(xs, ys, width, label="%d association%s" % (c, "s" if c > 1 else ""),
                      color=colors[j % len(colors)])
        for b, lab in zip(bars, labels):
            ax.annotate(lab + "x", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points")
    top = 1.45 * max(x["gbit_s"] for e in out["paths"].values() for x in e["points"])
    for i, p in enumerate(names):
        g = out["paths"][p].get("goal")
        ipf = out["paths"][p].get("iperf3_gbit_s")
        if ipf and ipf < top:
            ax.plot([i - 0.42, i + 0.42], [ipf, ipf], color="black", lw=1, ls=":")
        elif ipf:
            ax.annotate("iperf3 %.1f \u2191" % ipf, (i, top), ha="center", va="top", fontsize=7,
                        xytext=(0, -3), textcoords="offset points")
        if g:
            # the goal at each concurrency: a short red line over that bar
            for j, c in enumerate(conc):
                r = next((x for x in out["paths"]["direct"]["points"] if x["concurrency"] == c), None)
                if r:
                    x0 = i + (j - (len(conc) - 1) / 2) * width
                    ax.plot([x0 - width / 2, x0 + width / 2], [g * r["gbit_s"]] * 2, color="red", lw=1.5)
    ax.plot([], [], color="red", lw=1.5, label="goal (x direct at that concurrency)")
    ax.plot([], [], color="black", lw=1, ls=":", label="iperf3, 1 TCP stream, same path")
    ax.set_ylim(0, top)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([LABELS.get(p, p) for p in names], fontsize=7)
    ax.set_ylabel("DICOM throughput, Gbit/s (label: ratio to direct)")
    ax.set_title("storescu -> storescp, DICOM C-STORE by path and concurrent associations")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    # Right: medix-dp's cost per packet during the transfer (busy cycles, highest concurrency).
    cmax = max(conc)
    cyc_names, io_vals, rest_vals, busy = [], [], [], []
    for p in names:
        pt = next((x for x in out["paths"][p]["points"] if x["concurrency"] == cmax), None)
        for node, v in (pt or {}).get("medix", {}).items():
            if v["cycles_per_packet"]:
                suffix = "" if len(pt["medix"]) == 1 else ", " + node
                cyc_names.append(LABELS.get(p, p).replace("\n", " ") + suffix)
                st = v.get("stages", {})
                io = st.get("rx", 0) + st.get("tx", 0)
                share = io / (sum(st.values()) or 1)  # the stages' split applied to the busy cycles
                io_vals.append(v["cycles_per_packet"] * share)
                rest_vals.append(v["cycles_per_packet"] * (1 - share))
                busy.append(v["busy_share"])
    ys = list(range(len(cyc_names)))
    ax2.barh(ys, io_vals, color="#b0a8d0", label="rx + tx stages (af_packet vdev)")
    bars = ax2.barh(ys, rest_vals, left=io_vals, color="#55287f", label="medix-dp's pipeline (L2, IP, NAT, ESP)")
    for b, s in zip(bars, busy):
        ax2.annotate("busy %.0f%%" % (100 * (s or 0)), (b.get_x() + b.get_width(), b.get_y() + b.get_height() / 2),
                     va="center", fontsize=7, xytext=(2, 0), textcoords="offset points")
    ax2.legend(fontsize=7, loc="upper right")
    ax2.set_yticks(list(ys))
    ax2.set_yticklabels(cyc_names, fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xlabel("worker busy TSC cycles per packet (label: busy share)")
    ax2.set_title("medix-dp cost, %d associations" % cmax, fontsize=10)
    ax2.grid(axis="x", alpha=0.3)
    fig.suptitle("medix imaging benchmark  (%s, %d CPUs, %s%s, git %s)" % (
        out["cpu_model"], out["cpus"], out["date"][:16], ", quick" if out["quick"] else "", out["git"]), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_qos(ax, q):
    """The studies' rate on the shaped link, alone and beside bulk with and without classes, with
    the bulk's rate stacked on it; the guarantee and the contract as lines."""
    conc = sorted({x["concurrency"] for e in q["variants"].values() for x in e["points"]})
    colors = {"alone": "#8c8c8c", "classes": "#55a868", "no-classes": "#c44e52"}
    width = 0.8 / len(QOS_VARIANTS)
    for j, v in enumerate(QOS_VARIANTS):
        pts = {x["concurrency"]: x for x in q["variants"].get(v, {}).get("points", [])}
        xs = [i + (j - 1) * width for i, c in enumerate(conc) if c in pts]
        img = [pts[c]["mbit_s"] for c in conc if c in pts]
        bulk = [pts[c].get("bulk_mbit_s") or 0 for c in conc if c in pts]
        bars = ax.bar(xs, img, width, color=colors[v], label="studies: " + QOS_LABELS[v].replace("\n", " "))
        if any(bulk):
            ax.bar(xs, bulk, width, bottom=img, color=colors[v], alpha=0.25, hatch="//", edgecolor="white")
        for b, c in zip(bars, [c for c in conc if c in pts]):
            ax.annotate("%.0f\np99 %.1fs" % (pts[c]["mbit_s"], pts[c]["study_s_p99"]),
                        (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=6,
                        xytext=(0, 1), textcoords="offset points")
    from matplotlib.patches import Patch
    handles = ax.get_legend_handles_labels()[0]
    handles.append(Patch(facecolor="#999999", alpha=0.35, hatch="//", edgecolor="white",
                         label="bulk beside them (iperf3, 4 TCP, received), stacked"))
    g, k = q["imaging_guarantee_mbit_s"], q["contract_mbit_s"]
    handles.append(ax.axhline(k, color="black", lw=1, ls="--", label="contract %d Mbit/s (frames)" % k))
    handles.append(ax.axhline(g, color="#2a6f3a", lw=1, ls=":", label="imaging's guarantee %d Mbit/s (frames)" % g))
    ax.set_xticks(range(len(conc)))
    ax.set_xticklabels(["%d association%s" % (c, "s" if c > 1 else "") for c in conc], fontsize=8)
    ax.set_ylim(0, 1.45 * k)
    ax.set_ylabel("Mbit/s received (DICOM objects; bulk: TCP payload)")
    ax.set_title("QoS: studies on a link shaped to %d Mbit/s (%s)" % (k, q["date"][:10]), fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    raise SystemExit(main())
