#!/usr/bin/env bash
# Kills `evolve run` with SIGKILL in the middle of a generation, resumes it,
# and requires exactly the result of an uninterrupted run with the same seed:
# the same best fitness and genome, and the same generations.jsonl (but for
# its timings: seconds and throughput).
set -euo pipefail
evolve="$1"
data_dir="${EVOPLAST_DATA_DIR:-$2}"
if ! compgen -G "$data_dir/mnist/train-images-idx3-ubyte*" >/dev/null; then
  echo "skipped: no MNIST under $data_dir (run scripts/setup.sh)"; exit 77
fi
tmp=$(mktemp -d)
trap '((pid > 0)) && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=0
args=(run --quiet --seed 5 -P 6 -g 4 --set train.net=mlp128x1 --set train.train_per_task=1500
      --set train.val_per_task=300 --set train.test_per_task=300)

"$evolve" "${args[@]}" --out "$tmp/whole"

"$evolve" "${args[@]}" --out "$tmp/killed" &
pid=$!
# Wait for the first generation's checkpoint (up to 5 minutes: a sanitizer
# build on a busy machine is slow), then kill during the second.
for _ in $(seq 1 6000); do [[ -f $tmp/killed/checkpoint.json ]] && break; sleep 0.05; done
[[ -f $tmp/killed/checkpoint.json ]] || { echo "no checkpoint appeared"; exit 1; }
sleep 0.4
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pid=0
if [[ -f $tmp/killed/report.html ]]; then
  echo "the run finished before the kill: the test proves nothing (make generations longer)"; exit 1
fi
done_before=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['generations_done'])" "$tmp/killed/checkpoint.json")
echo "killed after $done_before of 4 generations"

"$evolve" run --quiet --resume "$tmp/killed"

python3 - "$tmp/whole" "$tmp/killed" <<'PY'
import json, sys
a, b = sys.argv[1], sys.argv[2]
ba, bb = json.load(open(f"{a}/best_rule.json")), json.load(open(f"{b}/best_rule.json"))
assert ba["genome"] == bb["genome"], "champions differ"
assert ba["fitness"] == bb["fitness"], f"champion fitness differs: {ba['fitness']} vs {bb['fitness']}"
assert ba["provisional"] is False and bb["provisional"] is False, "a finished run's best_rule.json is its champion"
assert ba["fitness_ci95"] == bb["fitness_ci95"] and ba["controls"] == bb["controls"] and ba["selection"] == bb["selection"]
def lines(d):
    out = []
    for l in open(f"{d}/generations.jsonl"):
        r = json.loads(l); r.pop("seconds"); r.pop("throughput"); out.append(r)
    return out
la, lb = lines(a), lines(b)
assert len(la) == len(lb) == 4 * (6 + 3), (len(la), len(lb))  # 4 generations of 6 individuals and 3 controls
assert la == lb, "generations.jsonl differs"
print(f"resumed run equals the uninterrupted one: best fitness {ba['fitness']:.6f}, generation {ba['generation']}")
PY
