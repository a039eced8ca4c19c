# Sourced by the MPI tests (after with_mnist.sh, which sets $evolve and $data_dir):
# small, longer    the runs' arguments: a run of seconds, and one whose
#                  generations are long enough to kill or stop a rank in one;
# same A B         fails unless two run directories hold the same records
#                  (generations.jsonl without its timings, and best_rule.json);
# rank1_after_checkpoint DIR
#                  prints rank 1's process id once DIR's first checkpoint exists.

small=(run --quiet --data-dir "$data_dir" -P 4 -g 2 --set train.net=mlp32x1 --set train.train_per_task=150
       --set train.val_per_task=50 --set train.test_per_task=50)
longer=(run --quiet --data-dir "$data_dir" -P 4 -g 3 --set train.net=mlp64x1 --set train.train_per_task=1500
        --set train.val_per_task=100 --set train.test_per_task=100)

# Records without their timings ("seconds", "throughput").
same() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def load(d):
    rows = [json.loads(l) for l in open(f"{d}/generations.jsonl")]
    for r in rows:
        r.pop("seconds"), r.pop("throughput")
    return rows, json.load(open(f"{d}/best_rule.json"))
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a[0] == b[0], f"{sys.argv[2]}: generations.jsonl differs from {sys.argv[1]}"
assert a[1] == b[1], f"{sys.argv[2]}: best_rule.json differs from {sys.argv[1]}"
PY
}

# Rank 1's process id, once the run's first checkpoint exists.
rank1_after_checkpoint() {
  for _ in $(seq 1 3000); do [ -f "$1/checkpoint.json" ] && break; sleep 0.1; done  # up to 5 minutes
  [ -f "$1/checkpoint.json" ] || { echo "no checkpoint in $1" >&2; exit 1; }
  for p in $(pgrep -f "$evolve run"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then echo "$p"; return; fi
  done
  echo "no rank 1 found" >&2; exit 1
}
