#!/usr/bin/env bash
# Every record evolve writes loads with Python's standard library as it is
# (csv, json) and has the columns the README promises: generations.jsonl,
# best_rule.json, checkpoint.json of a run; eval.json, the long results.csv
# and the Avalanche-style CSVs of an evaluation; config.json, epochs.csv and
# test.csv of a training.
set -euo pipefail
source "$(dirname "$0")/with_mnist.sh" "$1" "$2"
trap 'rm -rf "$tmp"' EXIT
"$evolve" run --quiet --data-dir "$data_dir" -P 3 -g 2 --set train.net=mlp32x1 --set train.train_per_task=150 \
  --set train.val_per_task=50 --set train.test_per_task=50 --out "$tmp/run" >/dev/null
# Two rule files of one label (two runs' folders named "run"): the second is labelled run-2, with a note;
# the copy stands for a run still going (its best rule provisional), which a note names too.
mkdir -p "$tmp/copy/run"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); r["provisional"] = True; json.dump(r, open(sys.argv[2], "w"))' \
  "$tmp/run/best_rule.json" "$tmp/copy/run/best_rule.json"
"$evolve" eval --quiet --data-dir "$data_dir" --rule finetune,ewc,"$tmp/run/best_rule.json" \
  --rule "$tmp/copy/run/best_rule.json" --net mlp32x1 --protocol split-domain --seeds 2 --train-per-task 150 \
  --out "$tmp/eval" >/dev/null 2>"$tmp/eval.err"
grep -q "labelled 'run-2' ('run' is taken)" "$tmp/eval.err" || { echo "no note of the label run-2:"; cat "$tmp/eval.err"; exit 1; }
grep -q "copy/run/best_rule.json is provisional" "$tmp/eval.err" || { echo "no provisional note:"; cat "$tmp/eval.err"; exit 1; }
if grep -q "$tmp/run/best_rule.json is provisional" "$tmp/eval.err"; then echo "a final champion called provisional"; exit 1; fi
# A run's champion on the held-out protocols (several: a folder each and the summary), with its ablations,
# into the run's heldout/ as the continual preset's run does at full data; then its report shows them.
"$evolve" eval --quiet --data-dir "$data_dir" --run "$tmp/run" --heldout --ablate --seeds 2 --epochs 1 \
  --train-per-task 100 --val-per-task 50 --test-per-task 50 --out "$tmp/run/heldout" >/dev/null
"$evolve" report "$tmp/run" >/dev/null
"$evolve" train --data-dir "$data_dir" --net mlp32x1 -P 2 --epochs 2 --train-per-task 1000 --validation 300 \
  --test-per-task 300 --out "$tmp/train" >/dev/null
# Records name the commit the binary was built from (stamped at build time).
src=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$src" describe --always --dirty --abbrev=7 --exclude='*' 2>/dev/null || echo unknown)
python3 - "$tmp" "$commit" <<'PY'
import csv, glob, json, math, sys
d, commit = sys.argv[1], sys.argv[2]
def need(row, keys, where):
    missing = [k for k in keys if k not in row]
    assert not missing, f"{where}: missing {missing}"
rows = [json.loads(l) for l in open(f"{d}/run/generations.jsonl")]
assert len(rows) == 12, f"generations.jsonl: {len(rows)} rows, want 2 generations × (3 individuals + 3 controls)"
for r in rows:
    need(r, ["generation", "role", "individual", "control", "origin", "genome", "rule", "fitness", "fitness_streams",
             "diverged", "seeds", "R_val", "R_test", "val", "test", "throughput"], "generations.jsonl")
    assert (r["fitness"] is None) == r["diverged"], "fitness is null exactly when diverged"
    assert r["fitness"] is None or math.isfinite(r["fitness"])
    assert (r["role"] == "control") == (r["individual"] is None) == (r["control"] is not None)
assert {r["generation"] for r in rows} == {0, 1}
assert sorted(r["control"] for r in rows if r["role"] == "control") == ["ewc", "ewc", "finetune", "finetune", "si", "si"]
best = json.load(open(f"{d}/run/best_rule.json"))
need(best, ["generation", "individual", "fitness", "fitness_ci95", "fitness_streams", "origin", "controls",
            "selection", "provisional", "genome", "rule", "R_test", "program"], "best_rule.json")
assert best["provisional"] is False and best["origin"]["kind"] in ("named", "random", "evolved")
assert set(best["controls"]) == {"finetune", "ewc", "si"}
lo, hi = best["fitness_ci95"]
assert lo <= best["fitness"] <= hi
assert best["program"]["commit"] == commit, (best["program"], commit)
ck = json.load(open(f"{d}/run/checkpoint.json"))
need(ck, ["config", "ga", "jsonl_bytes", "generations_done"], "checkpoint.json")
ev = json.load(open(f"{d}/eval/eval.json"))
need(ev, ["rules", "program", "dataset", "protocol", "net", "lr", "batch", "ewc", "metrics", "seeds"], "eval.json")
assert sorted(ev["rules"]) == sorted(["finetune", "ewc(λ=100)", "run", "run-2", "joint"]), sorted(ev["rules"])
for label, jr in ev["rules"].items():
    need(jr, ["definition", "acc", "bwt", "forgetting", "runs"], f"eval.json rules.{label}")
assert ev["ewc"]["lambda"] > 0 and ev["program"]["version"] and ev["program"]["commit"] == commit
long = list(csv.DictReader(open(f"{d}/eval/results.csv")))
need(long[0], ["rule", "seed", "protocol", "training_exp", "eval_exp", "accuracy", "loss", "forgetting", "diverged"],
     "results.csv")
assert {r["rule"] for r in long} >= {"finetune", "joint"}, {r["rule"] for r in long}
assert all(0 <= float(r["accuracy"]) <= 1 for r in long)
avalanche = glob.glob(f"{d}/eval/*/seed*/eval_results.csv")
assert avalanche, "no Avalanche-style CSVs"
for p in avalanche:
    av = list(csv.DictReader(open(p)))
    need(av[0], ["eval_exp", "training_exp", "eval_accuracy", "eval_loss", "forgetting"], p)
# The long table's forgetting averages to eval.json's, per rule and seed (one definition).
for label, jr in ev["rules"].items():
    if label == "joint":
        continue
    for s, run in enumerate(jr["runs"]):
        T = len(run["R_test"])
        last = [float(r["forgetting"]) for r in long
                if r["rule"] == label and int(r["seed"]) == run["seed"] and int(r["training_exp"]) == T - 1
                and int(r["eval_exp"]) < T - 1]
        assert abs(sum(last) / len(last) - jr["forgetting"][s]) < 1e-5, (label, s, sum(last) / len(last), jr["forgetting"][s])
tc = json.load(open(f"{d}/train/config.json"))
assert tc["program"]["commit"] == commit, (tc["program"], commit)
need(tc, ["program", "net", "dataset", "population", "epochs", "batch", "lr", "gamma", "optimizer", "seed"], "config.json")
ep = list(csv.DictReader(open(f"{d}/train/epochs.csv")))
need(ep[0], ["epoch", "net", "lr", "train_loss", "val_loss", "val_acc", "seconds", "network_images_per_s"], "epochs.csv")
assert len(ep) == 4, f"epochs.csv: {len(ep)} rows, want 2 epochs × 2 nets"
te = list(csv.DictReader(open(f"{d}/train/test.csv")))
need(te[0], ["net", "test_loss", "test_acc", "test_images"], "test.csv")
# The held-out evaluation: one folder per protocol, each a whole evaluation, and the summary over them.
summary = json.load(open(f"{d}/run/heldout/summary.json"))
folders = [p["folder"] for p in summary["protocols"]]
assert folders == ["split-domain-fashion", "split-class-fashion", "permuted-mnist", "sequence"], folders
for p in summary["protocols"]:
    ev_p = json.load(open(f"{d}/run/heldout/{p['folder']}/eval.json"))
    assert p["labels"] == ev_p["labels"], (p["labels"], ev_p["labels"])
    assert p["labels"][:4] == ["run", "finetune", "ewc(λ=100)", "si"] and p["labels"][-1] == "joint", p["labels"]
    ablated = [l for l in p["labels"] if l.startswith("-")]
    assert ablated, f"{p['folder']}: --ablate added no rule: {p['labels']}"
    for label in p["labels"]:
        row = p["rules"][label]
        assert math.isclose(row["acc_mean"], sum(ev_p["rules"][label]["acc"]) / 2, rel_tol=1e-9), (label, row)
        assert ("paired_acc_difference" in row) == (label != "run"), (label, row)
srows = list(csv.DictReader(open(f"{d}/run/heldout/summary.csv")))
need(srows[0], ["protocol", "rule", "acc_mean", "acc_std", "forgetting_mean", "paired_acc_diff_mean",
                "paired_acc_diff_lo", "paired_acc_diff_hi"], "summary.csv")
assert len(srows) == sum(len(p["labels"]) for p in summary["protocols"]), len(srows)
report = open(f"{d}/run/report.html").read()
for svg, title in [("heldout_acc.svg", "Held-out test ACC"), ("heldout_forgetting.svg", "Held-out forgetting")]:
    assert title in report, f"report.html does not show the chart '{title}'"
    bars = sum(len(p["labels"]) for p in summary["protocols"])  # one a rule and protocol, besides the legend's
    assert open(f"{d}/run/{svg}").read().count("<rect") >= bars, f"{svg}: fewer than {bars} bars"
assert all(f">{p['folder']}<" in report for p in summary["protocols"]), "report.html lacks a held-out protocol row"
print(f"records load: {len(rows)} generations rows, {len(long)} long rows, {len(avalanche)} Avalanche CSVs — columns as documented")
PY
