#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
#
# Plot the CSV of pnm-accuracy: per KV case, the attention mass kept
# relative to the oracle and the relative output error against the budget,
# PNM-KV and PnG-KV.  Run with Debian's /usr/bin/python3 (python3-matplotlib).
#
#   pnm-accuracy-plot.py RESULTS.csv OUT.png

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


PROG = "pnm-accuracy-plot.py"


def read_rows(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"{PROG}: {path}: {e.strerror}")
    need = {"case", "mode", "budget_tokens", "mass_ratio", "rel_error"}
    if not rows or not need <= set(rows[0]):
        sys.exit(f"{PROG}: {path}: not a pnm-accuracy CSV (columns "
                 f"{', '.join(sorted(need))} expected)")
    return rows


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {PROG} RESULTS.csv OUT.png")
    rows = read_rows(sys.argv[1])
    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(2, len(cases), figsize=(4 * len(cases), 6.5),
                             sharex=True, squeeze=False)
    for col, case in enumerate(cases):
        for mode, style in (("pnm-kv", "o-"), ("png-kv", "s--")):
            sel = [r for r in rows if r["case"] == case and r["mode"] == mode]
            budgets = [int(r["budget_tokens"]) for r in sel]
            axes[0][col].plot(budgets, [float(r["mass_ratio"]) for r in sel],
                              style, label=mode)
            axes[1][col].plot(budgets, [float(r["rel_error"]) for r in sel],
                              style, label=mode)
        axes[0][col].set_title(case)
        axes[1][col].set_xlabel("budget (tokens)")
        axes[1][col].set_yscale("log")
        axes[1][col].set_xscale("log", base=2)
    axes[0][0].set_ylabel("mass kept / oracle mass")
    axes[1][0].set_ylabel("relative output error")
    axes[0][0].legend()
    fig.tight_layout()
    try:
        fig.savefig(sys.argv[2], dpi=100)
    except OSError as e:
        sys.exit(f"{PROG}: cannot write {sys.argv[2]}: {e.strerror}")


if __name__ == "__main__":
    main()
