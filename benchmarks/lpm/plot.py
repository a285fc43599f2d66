#!/usr/bin/python3
"""Plots benchmarks/results/lpm.json: cycles per lookup per structure, memory on each bar."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

data = json.load(open(sys.argv[1]))
points = data["points"]
fig, ax = plt.subplots(figsize=(9, 4))
colors = {"dir24_8": "#888888", "compact": "#2a7ab9", "fib6_trie": "#d9822b"}
names = [p["name"] for p in points]
values = [p["cycles_per_lookup"] for p in points]
bars = ax.barh(range(len(points)), values, color=[colors.get(p["structure"], "#444") for p in points])
for bar, p in zip(bars, points):
    mem = p["memory_bytes"] / 1e6
    label = "%.1f  (%s)" % (p["cycles_per_lookup"], ("%.1f MB" % mem) if mem else "memory not measured")
    ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + label, va="center", fontsize=8)
ax.set_yticks(range(len(points)))
ax.set_yticklabels(names, fontsize=8)
ax.invert_yaxis()
ax.set_xlabel("TSC cycles per lookup (bursts of 32, 1,024 flows; best of %d)" % len(points[0]["rounds"]))
ax.set_xlim(0, max(values) * 1.45)
ax.set_title("IPv4 FIB lookups: %s routes per tenant" % points[0]["routes_per_tenant"], fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
