#!/usr/bin/env bash
# Every program (evolve and each bench) answers --help on stdout with exit 0,
# and a bad option with exactly one line on stderr ("NAME: error: …") and
# exit 2 — never CLI11's two-line report or an uncaught exception. And
# bench_population's bad values (sizes below 1 printed nothing or NaN
# figures) end in one line too, before its table starts.
set -u
failures=0
for program in "$@"; do
  name=$(basename "$program")
  out=$(timeout 60 "$program" --help 2>&1); rc=$?
  if [[ $rc -ne 0 || -z "$out" ]]; then
    echo "FAIL $name --help: exit $rc"; echo "$out"; failures=$((failures + 1))
  fi
  err=$(timeout 60 "$program" --no-such-option 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s\n' "$err" | wc -l)
  if [[ $rc -eq 2 && $lines -eq 1 && "$err" == "$name: error: "* ]]; then
    echo "$name: $err"
  else
    echo "FAIL $name --no-such-option: exit $rc, $lines stderr lines:"; echo "$err"; failures=$((failures + 1))
  fi
done
for program in "$@"; do
  [[ $(basename "$program") == bench_population ]] || continue
  for bad in "-P 0" "-P 2,0" "--steps 0" "-b 0" "--net mlp0x1" "--rule nope"; do
    # shellcheck disable=SC2086  # the case is several words
    out=$(timeout 60 "$program" $bad --backend cpu 2>"${TMPDIR:-/tmp}/bench-err-$$"); rc=$?
    err=$(cat "${TMPDIR:-/tmp}/bench-err-$$"); rm -f "${TMPDIR:-/tmp}/bench-err-$$"
    if [[ $rc -ne 0 && -z "$out" && $(printf '%s\n' "$err" | wc -l) -eq 1 && "$err" == "bench_population: error: "* ]]; then
      echo "bench_population $bad: $err"
    else
      echo "FAIL bench_population $bad: exit $rc, stdout '$out', stderr:"; echo "$err"; failures=$((failures + 1))
    fi
  done
done
exit $((failures > 0))
