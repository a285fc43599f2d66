#!/usr/bin/python3
"""The imaging benchmark's studies and its DICOM load (benchmarks/imaging/run drives it).

  dicom_load.py make DIR [--quick] [--ct-slices N]
      Synthetic studies, one folder each under DIR, written with test/ike/dicom.py's
      write_image (Explicit VR Little Endian, uncompressed, seeded random pixels: nothing a
      link could compress), and DIR/manifest.json (per object: SOP Instance UID, sha256 of the
      dataset bytes, size):
        ct  CT 512x512x16 bit, N slices (--ct-slices, default 64; --quick 16)
        mr  MR 256x256x16 bit, 96 slices (--quick 24)
        cr  CR 2 images 2048x2496x16 bit (--quick 1)
        dx  DX 1 image 3072x3072x16 bit
        us  a video-like object: Ultrasound Multi-frame, 640x480 RGB 8 bit, 40 frames (--quick 10)

  dicom_load.py run --ns NS --addr ADDR --port PORT --studies DIR --recv DIR
                    --concurrency C --count S [--medix LABEL=PREFIX ...] [--proc LABEL=PID ...]
                    [--ctl MEDIXCTL] [--counters PREFIX=FILE [--received-at NS:PORT]]
      S study transfers (the kinds round robin) by C concurrent associations: C threads each
      take the next study and run one storescu for it (one association per study) in namespace
      NS towards storescp at ADDR:PORT, until all S are done. Then every object storescp wrote
      into RECV (unique file names) is checked against the manifest: the dataset bytes after the
      file meta header must be the sent ones, each object received as many times as sent. With
      --medix, medix-dp's GetRuntime (medixctl -o json runtime) is read before and after, per
      node: busy share of its worker, busy TSC cycles per packet, per-stage cycles per packet;
      and how busy each CPU was (/proc/stat), and each --proc's CPU time per wall second.
      With --counters PREFIX=FILE, that medix-dp's GetCounters right before and after the
      transfers, two JSON lines appended to FILE; with --received-at NS:PORT, each with
      tcp_bytes_received: what the TCP connections to PORT in NS had received by then.
      Prints one JSON object; exit status 1 when a transfer failed or an object differs.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "ike"))
import dicom  # noqa: E402  (test/ike/dicom.py: one DICOM object; the file meta header's length)

# What storescu and storescp negotiate: the largest PDU dcmtk allows (a PACS would). Both run
# with TCP_NODELAY=1 (dcmtk leaves Nagle's algorithm on without it: benchmarks/imaging/run).
MAX_PDU = "131072"
KINDS = ("ct", "mr", "cr", "dx", "us")


def make(out, quick, ct_slices):
    from pydicom.uid import (CTImageStorage, MRImageStorage, ComputedRadiographyImageStorage,
                             DigitalXRayImageStorageForPresentation, UltrasoundMultiFrameImageStorage,
                             generate_uid)
    ct_slices = ct_slices or (16 if quick else 64)
    plan = {  # kind: (SOP class, modality, rows, columns, samples, bits, frames, objects)
        "ct": (CTImageStorage, "CT", 512, 512, 1, 16, 1, ct_slices),
        "mr": (MRImageStorage, "MR", 256, 256, 1, 16, 1, 24 if quick else 96),
        "cr": (ComputedRadiographyImageStorage, "CR", 2496, 2048, 1, 16, 1, 1 if quick else 2),
        "dx": (DigitalXRayImageStorageForPresentation, "DX", 3072, 3072, 1, 16, 1, 1),
        "us": (UltrasoundMultiFrameImageStorage, "US", 480, 640, 3, 8, 10 if quick else 40, 1),
    }
    rng = random.Random(20261206)
    manifest = {"studies": {}}
    for kind, (sop_class, modality, rows, cols, samples, bits, frames, n) in plan.items():
        folder = os.path.join(out, kind)
        os.makedirs(folder, exist_ok=True)
        study, series = generate_uid(), generate_uid()
        objects = []
        for i in range(n):
            path = os.path.join(folder, "%s%03d.dcm" % (kind, i + 1))
            pixels = rng.randbytes(rows * cols * samples * bits // 8 * frames)
            dicom.write_image(path, sop_class, modality, rows, cols, pixels, study, series, i + 1,
                              frames=frames, samples=samples, bits=bits,
                              description="medix imaging benchmark " + kind)
            data = dicom.dataset_bytes(path)
            objects.append({"file": os.path.basename(path), "uid": uid_of(path),
                            "sha256": hashlib.sha256(data).hexdigest(), "bytes": os.path.getsize(path)})
        manifest["studies"][kind] = {
            "modality": modality, "objects": objects, "bytes": sum(o["bytes"] for o in objects),
            "shape": "%d x %dx%d x %d bit%s%s" % (n, cols, rows, bits, " RGB" if samples == 3 else "",
                                                  ", %d frames" % frames if frames > 1 else "")}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    for kind, s in manifest["studies"].items():
        print("  %-3s %-40s %6.1f MiB" % (kind, s["shape"], s["bytes"] / 2**20))


def uid_of(path):
    import pydicom
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def runtime(ctl, prefix):
    out = subprocess.run([ctl, "-p", prefix, "-o", "json", "runtime"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("medixctl runtime (%s): %s" % (prefix, out.stderr.strip()))
    return json.loads(out.stdout)


def counters(ctl, spec, received_at=None):
    """--counters PREFIX=FILE: medix-dp's GetCounters (medixctl -o json counters) appended to
    FILE as one JSON line, read right before the first transfer and right after the last (the
    qos path's shaper classes over the transfers' time only)."""
    prefix, path = spec.split("=", 1)
    out = subprocess.run([ctl, "-p", prefix, "-o", "json", "counters"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("medixctl counters (%s): %s" % (prefix, out.stderr.strip()))
    d = json.loads(out.stdout)
    if received_at:
        d["tcp_bytes_received"] = tcp_received(*received_at.split(":"))
    with open(path, "a") as f:
        f.write(json.dumps(d) + "\n")


def tcp_received(ns, port):
    """The bytes the TCP connections to PORT in namespace NS have received (ss -ti), summed: a
    competing transfer's goodput at its receiver, whatever queue it shared."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tinH", "state", "established",
                          "( sport = :%s )" % port], capture_output=True, text=True, timeout=30).stdout
    return sum(int(w.split(":")[1]) for w in out.split() if w.startswith("bytes_received:"))


def runtime_delta(a, b):
    """What medix-dp's workers did between two GetRuntime reads."""
    tsc = int(b["tsc_hz"])
    busy = cycles = packets = 0
    stages = {}
    for la, lb in zip(a["lcores"], b["lcores"]):
        busy += int(lb["busy_cycles"]) - int(la["busy_cycles"])
        cycles += int(lb["cycles"]) - int(la["cycles"])
        for sa, sb in zip(la["stages"], lb["stages"]):
            d = stages.setdefault(sb["stage"], [0, 0])
            d[0] += int(sb["cycles"]) - int(sa["cycles"])
            d[1] += int(sb["packets"]) - int(sa["packets"])
    packets = stages.get("rx", [0, 0])[1]
    return {
        "workers": len(b["lcores"]),
        "tsc_hz": tsc,
        "packets": packets,
        "busy_share": round(busy / cycles, 4) if cycles else None,
        # A packet's cost on the worker: busy cycles (empty polls left out) per packet received.
        "cycles_per_packet": round(busy / packets, 1) if packets else None,
        "stages": {k: round(c / packets, 1) for k, (c, p) in stages.items() if packets and c and
                   k != "arp_pending"},
    }


def cpu_times():
    """Per CPU: (busy, total) jiffies from /proc/stat (busy = all but idle and iowait)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                out[line.split()[0]] = (sum(v) - v[3] - v[4], sum(v))
    return out


def proc_ticks(pid):
    """utime + stime of a process, all its threads, in clock ticks."""
    with open("/proc/%s/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])


def verify(manifest, sent_counts, recv):
    """Every file storescp wrote must be a sent object, byte for byte; each sent object must
    arrive as many times as it was sent."""
    want = {}
    for s in manifest["studies"].values():
        for o in s["objects"]:
            want[o["uid"]] = o["sha256"]
    got = {}
    different = []
    for name in os.listdir(recv):
        path = os.path.join(recv, name)
        try:
            uid = uid_of(path)
            digest = hashlib.sha256(dicom.dataset_bytes(path)).hexdigest()
        except Exception as e:  # noqa: BLE001 (a truncated or foreign file is a failure too)
            different.append("%s: %s" % (name, e))
            continue
        if want.get(uid) != digest:
            different.append(name)
            continue
        got[uid] = got.get(uid, 0) + 1
    missing = sum(max(0, n - got.get(uid, 0)) for uid, n in sent_counts.items())
    sent = sum(sent_counts.values())
    return {"objects_sent": sent, "objects_received": sum(got.values()) + len(different),
            "identical": sum(min(n, sent_counts.get(uid, 0)) for uid, n in got.items()),
            "missing": missing, "different": different[:10]}


def percentile(values, p):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def run(args):
    with open(os.path.join(args.studies, "manifest.json")) as f:
        manifest = json.load(f)
    kinds = [k for k in KINDS if k in manifest["studies"]]
    queue = [kinds[i % len(kinds)] for i in range(args.count)]
    lock = threading.Lock()
    results = []

    def one(kind, index):
        cmd = ["ip", "netns", "exec", args.ns, "env", "TCP_NODELAY=1", "timeout", "300", "storescu", "-aet", "HOSPITAL",
               "-aec", "ARCHIVE", "-pdu", MAX_PDU, "+sd", args.addr, str(args.port),
               os.path.join(args.studies, kind)]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True)
        t1 = time.monotonic()
        with lock:
            results.append({"kind": kind, "index": index, "start": t0, "end": t1, "rc": p.returncode,
                            "error": p.stderr.strip()[-300:] if p.returncode else ""})

    nodes = dict(n.split("=", 1) for n in args.medix or [])  # label -> file prefix
    procs = dict(n.split("=", 1) for n in args.proc or [])  # label -> pid
    before = {k: runtime(args.ctl, p) for k, p in nodes.items()}
    if args.counters:
        counters(args.ctl, args.counters, args.received_at)
    cpu0 = cpu_times()
    proc0 = {k: proc_ticks(pid) for k, pid in procs.items()}
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        list(pool.map(lambda ik: one(ik[1], ik[0]), enumerate(queue)))
    wall = time.monotonic() - start
    cpu1 = cpu_times()
    proc1 = {k: proc_ticks(pid) for k, pid in procs.items()}
    if args.counters:
        counters(args.ctl, args.counters, args.received_at)
    after = {k: runtime(args.ctl, p) for k, p in nodes.items()}

    sent_counts = {}
    nbytes = 0
    for r in results:
        s = manifest["studies"][r["kind"]]
        nbytes += s["bytes"]
        for o in s["objects"]:
            sent_counts[o["uid"]] = sent_counts.get(o["uid"], 0) + 1
    check = verify(manifest, sent_counts, args.recv)
    times = [r["end"] - r["start"] for r in results]
    failed = [r for r in results if r["rc"] != 0]
    out = {
        "concurrency": args.concurrency,
        "studies": len(results),
        "bytes": nbytes,
        "wall_s": round(wall, 3),
        "gbit_s": round(nbytes * 8 / wall / 1e9, 4),
        "studies_per_min": round(len(results) / wall * 60, 2),
        "study_s_p50": round(percentile(times, 50), 3),
        "study_s_p99": round(percentile(times, 99), 3),
        "study_s_by_kind": {k: round(percentile([r["end"] - r["start"] for r in results
                                                 if r["kind"] == k], 50), 3)
                            for k in kinds if any(r["kind"] == k for r in results)},
        "failed_transfers": [{"kind": r["kind"], "rc": r["rc"], "error": r["error"]} for r in failed],
        "verify": check,
        "byte_identical": not failed and check["identical"] == check["objects_sent"] and
        not check["different"] and check["objects_received"] == check["objects_sent"],
    }
    # How busy each CPU was (a busy-polling worker's CPU reads 1.0): on a small machine, whether
    # the hosts' kernels had a CPU to spare.
    out["cpu_busy"] = {c: round((cpu1[c][0] - cpu0[c][0]) / max(1, cpu1[c][1] - cpu0[c][1]), 3) for c in cpu1}
    if procs:
        hz = os.sysconf("SC_CLK_TCK")
        out["process_cpu"] = {k: round((proc1[k] - proc0[k]) / hz / wall, 3) for k in procs}
    if nodes:
        out["medix"] = {k: runtime_delta(before[k], after[k]) for k in nodes}
    print(json.dumps(out))
    return 0 if out["byte_identical"] else 1


def summary(path):
    """One line for the run's log."""
    with open(path) as f:
        d = json.load(f)
    line = "%d studies %.2f Gbit/s, p50 %.2f s p99 %.2f s, byte-identical %s" % (
        d["studies"], d["gbit_s"], d["study_s_p50"], d["study_s_p99"], d["byte_identical"])
    for k, v in d.get("medix", {}).items():
        line += "; %s: %s cycles/pkt, busy %.0f%%" % (k, v["cycles_per_packet"], 100 * (v["busy_share"] or 0))
    for k, v in d.get("process_cpu", {}).items():
        line += "; %s CPU %.0f%%" % (k, 100 * v)
    line += "; CPUs busy " + " ".join("%.0f%%" % (100 * v) for v in d["cpu_busy"].values())
    print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--quick", action="store_true")
    m.add_argument("--ct-slices", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("--ns", required=True)
    r.add_argument("--addr", required=True)
    r.add_argument("--port", type=int, default=11112)
    r.add_argument("--studies", required=True)
    r.add_argument("--recv", required=True)
    r.add_argument("--concurrency", type=int, default=1)
    r.add_argument("--count", type=int, default=10)
    r.add_argument("--medix", action="append")
    r.add_argument("--proc", action="append", help="LABEL=PID: that process's CPU time / wall time")
    r.add_argument("--counters", help="PREFIX=FILE: medix-dp's counters before and after, two JSON lines")
    r.add_argument("--received-at", help="NS:PORT: with --counters, what TCP to PORT in NS received")
    r.add_argument("--ctl", default=os.path.join(ROOT, "build", "controlplane", "cli", "medixctl"))
    sm = sub.add_parser("summary")
    sm.add_argument("file")
    args = ap.parse_args()
    if args.cmd == "summary":
        summary(args.file)
        return 0
    if args.cmd == "make":
        make(args.dir, args.quick, args.ct_slices)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
