# Sourced by the MPI tests (after with_mnist.sh, which sets $evolve and $data_dir):
# small, longer    the runs' arguments: a run of seconds, and one whose
#                  generations are long enough to kill or stop a rank in one;
# same A B         fails unless two run directories hold the same records
#                  (generations.jsonl without its timings, and best_rule.json);
# rank1_after_checkpoint DIR
#                  prints rank 1's process id once DIR's first checkpoint exists
#                  (rank 1 of the run writing DIR: ctest may run another MPI test
#                  beside this one, whose rank 1 is not to be signalled);
# signal_rank1 SIGNAL DIR COMMAND...
#                  runs COMMAND --out DIR in the background (stderr to DIR.err),
#                  sends SIGNAL to rank 1 after the first checkpoint, and fails
#                  unless the run then ends with a non-zero status;
# one_line PATTERN FILE
#                  fails unless FILE holds exactly one line from evolve and it
#                  matches PATTERN (grep's).

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
  for p in $(pgrep -f -- "$evolve run .*--out $1\$"); do  # signal_rank1 puts --out DIR last
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then echo "$p"; return; fi
  done
  echo "no rank 1 found" >&2; exit 1
}

signal_rank1() {
  local signal=$1 dir=$2 run rc
  shift 2
  set +e
  "$@" --out "$dir" >/dev/null 2>"$dir.err" &
  run=$!
  kill "-$signal" "$(rank1_after_checkpoint "$dir")"
  wait "$run"
  rc=$?
  set -e
  [ "$rc" -ne 0 ] || { echo "rank 1 given SIG$signal: the run must end with a non-zero status"; exit 1; }
}

one_line() {
  grep -q "$1" "$2" || { echo "evolve's line is missing:"; cat "$2"; exit 1; }
  [ "$(grep -c '^evolve: ' "$2")" -eq 1 ] || { echo "more than one line from evolve:"; cat "$2"; exit 1; }
}
