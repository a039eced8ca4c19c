#!/usr/bin/env bash
# Does the champion beat the rule it was seeded with on the protocols it was
# evolved on? The champion beside fly and fine-tuning on Split MNIST class- and
# domain-incremental, test data, full MNIST, 5 held-out seeds (1000–1004):
# the seeds, the data size and the test split are all new to it.
# Usage: bash results/evolved-vs-baselines/evolved-protocols.sh [evolve binary] [data dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
evolve=${1:-$here/../../build/evolve}
data=${2:-$here/../../data}
rm -rf "$here/evolved-protocols"
"$evolve" eval --quiet --run "$here/run" --rule "$here/run/best_rule.json,fly,finetune" --no-joint \
  --protocol split-class,split-domain --seeds 5 --data-dir "$data" --out "$here/evolved-protocols" \
  > "$here/evolved-protocols.txt"
