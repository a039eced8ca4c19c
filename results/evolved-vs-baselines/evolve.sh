#!/usr/bin/env bash
# The evolution of this study, sized for about an hour on a 2-core CPU:
# the continual preset's fitness (ACC + BWT on validation, mean over 2 shared
# streams and both protocols) on Split MNIST domain- and class-incremental,
# 1 000 training images per task (250 validation, 100 test), an MLP with one hidden layer of 1 000 units
# (wide enough for the fly's sparse code), P = 20 for 14 generations, the
# named rules (fly included) seeded into generation 0, finetune/EWC/SI as
# controls, the champion chosen among 3 finalists on 5 fresh streams.
# Usage: bash results/evolved-vs-baselines/evolve.sh [evolve binary] [data dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evolve=${1:-$here/../../build/evolve}
data=${2:-$here/../../data}
"$evolve" run --preset continual --seed 1 -P 20 -g 14 \
  --set train.net=mlp1000x1 --set train.protocol=split-domain,split-class \
  --set train.train_per_task=1000 --set train.val_per_task=250 --set train.test_per_task=100 \
  --set heldout.seeds=0 --data-dir "$data" --out "$here/run"
