#!/usr/bin/env python3
"""Markdown tables of this study from its eval.json files (standard library only).

Usage: python3 results/evolved-vs-baselines/tables.py [heldout|evolved|ablation]
  heldout   run/heldout/: ACC and forgetting per rule and protocol, and the
            champion's paired differences (ACC, forgetting) to each other rule
  evolved   evolved-protocols/: the same on the protocols the run evolved on
  ablation  ablation/: the champion and each term switched off, paired differences
"""
import json
import pathlib
import sys

here = pathlib.Path(__file__).resolve().parent


def pct(v):
    return f"{round(100 * v, 1) + 0.0:.1f}"


def mean_std(v):
    m = sum(v) / len(v)
    s = (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
    return f"{pct(m)} ± {pct(s)}"


def interval(d):
    lo, hi = d["ci95"]
    return f"{100 * d['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def tables(folder, title_of=lambda f: f):
    """One table per protocol folder under `folder` (eval.json), in summary.json's order."""
    summary = json.loads((folder / "summary.json").read_text())
    for p in summary["protocols"]:
        ev = json.loads((folder / p["folder"] / "eval.json").read_text())
        labels = ev.get("labels", list(ev["rules"]))
        diffs = ev.get("paired_differences", {}).get("vs", {})
        first = labels[0]
        print(f"**{title_of(p['protocol'])}** ({len(ev['rules'][first]['acc'])} seeds)\n")
        print(f"| rule | test ACC % | forgetting % | {first} − rule: ACC | {first} − rule: forgetting |")
        print("| --- | --- | --- | --- | --- |")
        for label in labels:
            r = ev["rules"][label]
            d = diffs.get(label, {})
            print(f"| {label} | {mean_std(r['acc'])} | {'—' if label == 'joint' else mean_std(r['forgetting'])} | "
                  f"{interval(d['acc']) if 'acc' in d else '—'} | "
                  f"{interval(d['forgetting']) if 'forgetting' in d else '—'} |")
        print()


names = {"split-domain-fashion": "Split FashionMNIST, domain-incremental",
         "split-class-fashion": "Split FashionMNIST, class-incremental",
         "permuted-mnist": "Permuted MNIST, 10 tasks",
         "sequence": "MNIST → FashionMNIST",
         "split-class": "Split MNIST, class-incremental",
         "split-domain": "Split MNIST, domain-incremental",
         "split-class-mnist": "Split MNIST, class-incremental",
         "split-domain-mnist": "Split MNIST, domain-incremental"}
what = sys.argv[1] if len(sys.argv) > 1 else "heldout"
folder = {"heldout": here / "run" / "heldout", "evolved": here / "evolved-protocols", "ablation": here / "ablation"}[what]
tables(folder, lambda p: names.get(p, p))
