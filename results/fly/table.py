#!/usr/bin/env python3
"""Markdown tables of results/fly from its eval.json files (standard library only).

Usage: python3 results/fly/table.py  → prints one table of test ACC and one of
forgetting (mean ± std over the 5 seeds, %), a row per protocol, a column per
method, and fly's paired ACC difference to each baseline with its 95% interval.
"""
import json
import pathlib

here = pathlib.Path(__file__).resolve().parent
protocols = [
    ("split-task-mnist", "Split MNIST, task-incremental"),
    ("split-domain-mnist", "Split MNIST, domain-incremental"),
    ("split-class-mnist", "Split MNIST, class-incremental"),
    ("permuted-mnist", "Permuted MNIST, 10 tasks (5 000 training images each)"),
    ("split-task-fashion", "Split FashionMNIST, task-incremental"),
    ("split-domain-fashion", "Split FashionMNIST, domain-incremental"),
    ("split-class-fashion", "Split FashionMNIST, class-incremental"),
]
methods = ["fly", "finetune", "ewc(λ=100)", "si", "joint"]


def mean_std(v):
    m = sum(v) / len(v)
    s = (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
    return f"{round(100 * m, 1) + 0.0:.1f} ± {100 * s:.1f}"  # + 0.0: no "-0.0"


def evaluated():
    """(protocol name, its eval.json's rules) for every table that has been run."""
    for folder, name in protocols:
        path = here / folder / "eval.json"
        if path.exists():
            yield name, json.loads(path.read_text())["rules"]


def header(columns):
    print("| protocol | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))


def table(metric, title):
    print(f"{title}\n")
    header(methods)
    for name, rules in evaluated():
        cells = []
        for m in methods:
            r = rules.get(m)
            cells.append("—" if r is None or (metric != "acc" and m == "joint") else mean_std(r[metric]))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()


# Student's t_{0.975, df} for df = 1…10 (5 seeds: df = 4).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def paired():
    print("fly − baseline, test ACC in points, paired by seed: mean [95% CI, Student's t]\n")
    others = methods[1:]
    header(others)
    for name, rules in evaluated():
        cells = []
        for m in others:
            d = [a - b for a, b in zip(rules["fly"]["acc"], rules[m]["acc"])]
            n = len(d)
            mean = sum(d) / n
            sd = (sum((x - mean) ** 2 for x in d) / (n - 1)) ** 0.5
            h = T975[n - 2] * sd / n ** 0.5
            cells.append(f"{100 * mean:+.1f} [{100 * (mean - h):+.1f}, {100 * (mean + h):+.1f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()


table("acc", "Test ACC % (mean ± std over 5 seeds)")
table("forgetting", "Forgetting % (Chaudhry et al.; mean ± std over 5 seeds)")
paired()
