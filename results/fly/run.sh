#!/usr/bin/env bash
# The fly baseline beside fine-tuning, EWC, SI and joint training, every
# method on the same net (mlp2000x1: one fixed-width hidden layer of 2 000
# units, the fly's expansion) and the same 5 held-out seeds (1000–1004).
# Full data except Permuted MNIST (10 tasks × 5 000 training, 500 validation and 2 000 test images per task, to fit
# a 2-core CPU). Usage: bash results/fly/run.sh [evolve binary] [data dir] [table…]
# (with table names, e.g. permuted-mnist, only those are run again).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evolve=${1:-$here/../../build/evolve}
data=${2:-$here/../../data}
only=("${@:3}")
run() {  # name, then eval options
  local name=$1; shift
  if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $name "* ]]; then return; fi
  rm -rf "$here/$name"
  "$evolve" eval --quiet --rule fly,finetune,ewc,si --joint --net mlp2000x1 --seeds 5 \
    --data-dir "$data" --out "$here/$name" "$@" > "$here/$name.txt"
}
run split-task-mnist --protocol split-task --dataset mnist
run split-domain-mnist --protocol split-domain --dataset mnist
run split-class-mnist --protocol split-class --dataset mnist
run split-task-fashion --protocol split-task --dataset fashion
run split-domain-fashion --protocol split-domain --dataset fashion
run split-class-fashion --protocol split-class --dataset fashion
run permuted-mnist --protocol permuted --dataset mnist --train-per-task 5000 --val-per-task 500 --test-per-task 2000
