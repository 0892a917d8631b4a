#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""numpy reference and plots for pnm-bench-kernels.

run:  the same SELECT_ATTEND the device model runs (Quest scores summed over
      the GQA group, kept sink and recent pages, top-k, attention over the
      selected pages), written in numpy over the benchmark's device memory
      file.  Prints "context seconds" per context (median of --reps).
plot: time against context length from the benchmark's CSV, as a PNG.

Needs Debian's python3-numpy (and python3-matplotlib for plot) under
/usr/bin/python3; the pyenv python3 on PATH has neither.
"""
import argparse
import sys
import time

import numpy as np


def bf16_to_f32(u16):
    """bf16 bit patterns to float32: the bf16 is the top half."""
    return (u16.astype(np.uint32) << 16).view(np.float32)


def select(digests, q, budget):
    """Quest selection: kept first and last page, then the top scores."""
    n = digests.shape[0]
    scores = np.empty(n, dtype=np.float32)
    step = 4096  # bounds the (pages, group, head_dim) temporaries
    for start in range(0, n, step):
        d = bf16_to_f32(digests[start:start + step])     # (p, 2, head_dim)
        lo = d[:, None, 0, :] * q[None]                  # (p, group, head_dim)
        hi = d[:, None, 1, :] * q[None]
        scores[start:start + step] = np.maximum(lo, hi).sum(axis=(1, 2))
    rest = scores[1:n - 1]
    top = np.argpartition(-rest, budget - 3)[:budget - 2] + 1
    return np.sort(np.concatenate(([0, n - 1], top)))


def attend(kv, pages, q, head_dim):
    """Attention of each query head over the pages' tokens: out, lse."""
    k = bf16_to_f32(kv[pages, 0]).reshape(-1, head_dim)  # (tokens, head_dim)
    v = bf16_to_f32(kv[pages, 1]).reshape(-1, head_dim)
    logits = (k @ q.T) / np.sqrt(np.float32(head_dim))   # (tokens, group)
    m = logits.max(axis=0)
    w = np.exp(logits - m)
    s = w.sum(axis=0)
    return (w.T @ v) / s[:, None], m + np.log(s)


def run(args):
    mem = np.memmap(args.mem, mode="r", dtype=np.uint8)
    d, g, p = args.head_dim, args.group, args.page_tokens
    slot = 2 * p * d * 2
    kv = np.ndarray((args.slots, 2, p, d), dtype=np.uint16, buffer=mem,
                    offset=args.pool)
    digests = np.ndarray((args.slots, 2, d), dtype=np.uint16, buffer=mem,
                         offset=args.pool + args.slots * slot)
    q = np.ndarray((g, d), dtype=np.float32, buffer=mem, offset=getattr(args, "in"))
    q = np.array(q)
    for ctx in (int(c) for c in args.contexts.split(",")):
        n = ctx // p
        windows = args.slots // n
        times = []
        for r in range(args.reps):
            first = (r % windows) * n  # the device model's windows
            t0 = time.perf_counter()
            pages = select(digests[first:first + n], q, args.budget)
            attend(kv, first + pages, q, d)
            times.append(time.perf_counter() - t0)
        print(ctx, float(np.median(times)), flush=True)


def plot(args):
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {}
    with open(args.csv) as f:
        for row in csv.DictReader(f):
            if not row["context_tokens"]:
                continue
            series.setdefault(row["kernel"], []).append(
                (int(row["context_tokens"]), float(row["seconds"])))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=80)
    for name, points in sorted(series.items()):
        points.sort()
        ax.plot([c for c, _ in points], [s * 1e3 for _, s in points],
                marker="o", markersize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("time per command (ms)")
    ax.set_title("CXL-PNM device model kernels (bf16, head_dim 128, group 4)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--mem", required=True)
    r.add_argument("--pool", type=int, required=True)
    r.add_argument("--slots", type=int, required=True)
    r.add_argument("--in", type=int, required=True)
    r.add_argument("--head-dim", type=int, default=128)
    r.add_argument("--group", type=int, default=4)
    r.add_argument("--page-tokens", type=int, default=16)
    r.add_argument("--budget", type=int, default=128)
    r.add_argument("--contexts", required=True)
    r.add_argument("--reps", type=int, default=3)
    pl = sub.add_parser("plot")
    pl.add_argument("--csv", required=True)
    pl.add_argument("--out", required=True)
    args = ap.parse_args()
    return run(args) if args.cmd == "run" else plot(args)


if __name__ == "__main__":
    sys.exit(main())
