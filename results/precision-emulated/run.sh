#!/usr/bin/env bash
# The seed's baseline (the PyTorch-example CNN, Adadelta lr 1.0, γ 0.7, batch
# 64, 14 epochs, full MNIST: 50 000 training and 10 000 validation images,
# the 10 000 test images; seed 1) trained on the CPU in fp32 and with tf32 and
# bf16 emulated (every GEMM operand rounded as a tensor core's conversion
# rounds it, products summed in fp32). 12 to 19 minutes a precision on 2 cores.
# Then two plasticity rules under tf32 and bf16 (rules/; fp32's numbers are in
# results/fly and results/evolved-vs-baselines, same seeds and settings):
# fly on class-incremental Split MNIST, and the evolved champion on its four
# held-out protocols. About 1.5 minutes each.
# Usage: bash results/precision-emulated/run.sh [evolve binary] [data dir] [precision…]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evolve=${1:-$here/../../build/evolve}
data=${2:-$here/../../data}
precisions=("${@:3}")
[ ${#precisions[@]} -gt 0 ] || precisions=(fp32 tf32 bf16)
for p in "${precisions[@]}"; do
  rm -rf "${here:?}/$p"
  "$evolve" train --backend cpu --precision "$p" --epochs 14 --seed 1 --data-dir "$data" --out "$here/$p" \
    > "$here/$p.txt"
done
champion=$here/../evolved-vs-baselines/run
mkdir -p "$here/rules"
for p in tf32 bf16; do
  "$evolve" eval --quiet --rule fly --net mlp2000x1 --seeds 5 --protocol split-class --dataset mnist --precision "$p" \
    --data-dir "$data" --out "$(mktemp -d)/fly" > "$here/rules/fly-split-class-mnist-$p.txt"
  "$evolve" eval --quiet --run "$champion" --heldout --rule "$champion/best_rule.json" --no-joint --precision "$p" \
    --train-per-task 10000 --val-per-task 500 --test-per-task 1000 --data-dir "$data" --out "$(mktemp -d)/champion" \
    > "$here/rules/champion-heldout-$p.txt"
done
