#!/usr/bin/env bash
# Every program (evolve and each bench) answers --help on stdout with exit 0,
# and a bad option with exactly one line on stderr ("NAME: error: …") and
# exit 2 — never CLI11's two-line report or an uncaught exception.
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
exit $((failures > 0))
