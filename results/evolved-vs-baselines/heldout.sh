#!/usr/bin/env bash
# The held-out evaluation of this study's champion: beside fly (the circuit it
# was seeded with), fine-tuning, EWC, SI and joint training, on the net it was
# evolved for, on protocols it never saw (Split FashionMNIST domain- and
# class-incremental, Permuted MNIST with 10 tasks, MNIST → FashionMNIST), test
# data, 5 seeds from 1000. 10 000 training images per task (all of them for
# Split FashionMNIST; a fifth for Permuted MNIST and the sequence) and 1 000
# test images per task, to fit a 2-core CPU.
# Usage: bash results/evolved-vs-baselines/heldout.sh [evolve binary] [data dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evolve=${1:-$here/../../build/evolve}
data=${2:-$here/../../data}
# Into run/heldout, where `evolve run` puts its own held-out evaluation and
# `evolve report` finds it.
rm -rf "$here/run/heldout"
"$evolve" eval --quiet --run "$here/run" --heldout --rule "$here/run/best_rule.json,fly,finetune,ewc,si" \
  --train-per-task 10000 --val-per-task 500 --test-per-task 1000 --data-dir "$data" --out "$here/run/heldout" \
  > "$here/run/heldout.txt"
# The ablation: the champion with each of its active terms switched off in
# turn, on the same held-out protocols (3 seeds, 2 000 training and 500 test
# images per task: smaller, to fit).
rm -rf "$here/ablation"
"$evolve" eval --quiet --run "$here/run" --heldout --seeds 3 --ablate --rule "$here/run/best_rule.json" --no-joint \
  --train-per-task 2000 --val-per-task 200 --test-per-task 500 --data-dir "$data" --out "$here/ablation" \
  > "$here/ablation.txt"
