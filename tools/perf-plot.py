#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
#
# Plot the CSV of `pnmctl perf --csv` (pnmctl runs it for --plot): decode
# tokens per second against context length, one panel per model, one line
# per mode.  Needs Debian's python3-matplotlib, hence /usr/bin/python3.
#
# Usage: perf-plot.py CSV PNG

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODES = ("baseline", "pnm-kv", "png-kv")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: perf-plot.py CSV PNG")
    with open(sys.argv[1], newline="") as f:
        rows = list(csv.DictReader(f))
    models = list(dict.fromkeys(r["model"] for r in rows))
    if not models:
        sys.exit("perf-plot.py: %s has no rows" % sys.argv[1])
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8),
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        for mode in MODES:
            pts = [(int(r["context"]) / 1024, float(r["tokens_per_s"]))
                   for r in rows
                   if r["model"] == model and r["mode"] == mode
                   and int(r["batch"]) > 0]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=mode)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("context (K tokens)")
        ax.set_ylabel("decode tokens/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    devices = rows[0]["devices"]
    fig.suptitle("pnmctl perf: %s CXL devices, batch as large as fits"
                 % devices)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
