#!/usr/bin/env bash
# Run directories are never shared by accident: two runs started in the same
# second get two folders; a second writer (or a --resume of a live run) is
# refused by the directory's lock; --out into a folder with someone else's
# files is refused and leaves them alone; a run that fails before its first
# generation, and a training or an evaluation that fails before its first
# result, leave nothing behind.
set -uo pipefail
source "$(dirname "$0")/with_mnist.sh" "$1" "$2"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
small=(run --quiet --data-dir "$data_dir" -P 3 -g 1 --set train.net=mlp32x1 --set train.train_per_task=100
       --set train.val_per_task=50 --set train.test_per_task=50)
long=(run --quiet --data-dir "$data_dir" -P 4 -g 50 --set train.net=mlp64x1 --set train.train_per_task=1000
      --set train.val_per_task=200 --set train.test_per_task=200)

# 1. Two runs started together without --out: two folders, each whole.
mkdir -p "$tmp/cwd" && cd "$tmp/cwd"
"$evolve" "${small[@]}" --seed 3 & a=$!
"$evolve" "${small[@]}" --seed 3 & b=$!
wait $a; ra=$?; wait $b; rb=$?
((ra == 0 && rb == 0)) || fail "concurrent runs exited $ra and $rb"
n=$(find runs -maxdepth 1 -mindepth 1 -type d | wc -l)
((n == 2)) || fail "two concurrent runs made $n run folders: $(ls runs)"
for d in runs/*/; do
  lines=$(wc -l <"$d/generations.jsonl")
  ((lines == 6)) || fail "$d/generations.jsonl holds $lines lines, not 6 (one generation of 3 and 3 controls)"
done
echo "same-second runs: $(ls runs | paste -sd' ')"

# 2. A second writer of a live run, and --resume of it, are refused with one line.
"$evolve" "${long[@]}" --out "$tmp/live" & live=$!
pids+=("$live")
for _ in $(seq 1 600); do [[ -f $tmp/live/checkpoint.json ]] && break; sleep 0.05; done
[[ -f $tmp/live/checkpoint.json ]] || fail "the live run wrote no checkpoint"
"$evolve" run --quiet --resume "$tmp/live" 2>"$tmp/err"; rc=$?
lines=$(wc -l <"$tmp/err")
if ((rc == 0 || lines != 1)) || ! grep -q "in use by another evolve (pid $live)" "$tmp/err"; then
  fail "--resume of a live run: exit $rc, stderr: $(cat "$tmp/err")"
else
  echo "resume of a live run:  $(cat "$tmp/err")"
fi
kill -9 "$live"; wait "$live" 2>/dev/null
# Once the writer is gone, its lock is gone too: the resume is accepted (and stopped at once).
timeout 5 "$evolve" run --quiet --resume "$tmp/live" 2>"$tmp/err"; rc=$?
((rc == 124 || rc == 0)) || fail "--resume after the writer died: exit $rc, $(cat "$tmp/err")"

# 3. --out into a folder that holds someone else's files: refused, the files untouched.
mkdir -p "$tmp/mine" && echo "precious" >"$tmp/mine/config.toml"
"$evolve" "${small[@]}" --out "$tmp/mine" 2>"$tmp/err"; rc=$?
if ((rc == 0)) || [[ $(cat "$tmp/mine/config.toml") != precious ]] || [[ $(wc -l <"$tmp/err") -ne 1 ]] || ! grep -q "not empty" "$tmp/err"; then
  fail "--out into a non-empty folder: exit $rc, $(cat "$tmp/err")"
else
  echo "--out non-empty:       $(cat "$tmp/err")"
fi

# 4. A run that fails before its first generation leaves no folder behind.
rm -rf runs
"$evolve" "${small[@]}" --set train.dataset=fashion --data-dir "$tmp/nothing-here" 2>"$tmp/err"; rc=$?
((rc != 0)) || fail "a run without data succeeded"
if [[ -d runs ]] && [[ -n $(ls runs) ]]; then fail "a failed run left $(ls runs) behind"; fi
"$evolve" "${small[@]}" --out "$tmp/new" --data-dir "$tmp/nothing-here" 2>/dev/null
[[ -e $tmp/new ]] && fail "a failed run left --out $tmp/new behind"

# 5. A training or an evaluation that fails once its folder is made (a net of
#    about 1 TB: refused before anything is allocated, on any machine) leaves
#    no runs/ (not even empty), removes the --out it made with the folder it
#    made above it, and empties the empty --out it was given.
huge=(--net mlp65536x64 --data-dir "$data_dir")
fails_after_folder() {  # NAME, then the evolve command line without --out
  local name=$1 before=$failures
  shift
  rm -rf runs "$tmp/made" "$tmp/given" && mkdir "$tmp/given"
  "$evolve" "$@" 2>"$tmp/err" >/dev/null && fail "$name of a 1 TB net succeeded"
  grep -q "memory" "$tmp/err" || fail "$name of a 1 TB net: $(cat "$tmp/err")"
  [[ -e runs ]] && fail "a failed $name left runs/ behind: $(ls -A runs | paste -sd' ')"
  "$evolve" "$@" --out "$tmp/made/deeper" 2>/dev/null >/dev/null
  [[ -e $tmp/made ]] && fail "a failed $name left the --out it made behind: $(find "$tmp/made" | paste -sd' ')"
  "$evolve" "$@" --out "$tmp/given" 2>/dev/null >/dev/null
  [[ -d $tmp/given && -z $(ls -A "$tmp/given") ]] ||
    fail "a failed $name left $(ls -A "$tmp/given" | paste -sd' ') in the empty --out"
  ((failures == before)) && printf '%-22s nothing left behind\n' "failed $name:"
}
fails_after_folder train train --epochs 1 "${huge[@]}"
fails_after_folder eval eval --rule fly --protocol split-class --seeds 1 "${huge[@]}"

if ((failures)); then echo "$failures failure(s)"; exit 1; fi
echo "run directories: all cases passed"
