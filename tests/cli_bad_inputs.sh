#!/usr/bin/env bash
# `evolve train` on every bad input: each must end with exactly one line on
# stderr ("evolve: error: …" naming the file or value) and exit status 1 (2 for a malformed command line) —
# never a crash (signal), a hang, or a stack trace.
set -u
evolve=$(realpath "$1")
tmp=$(mktemp -d)
trap 'umount "$tmp/full" 2>/dev/null; rm -rf "$tmp"' EXIT
failures=0
# Work in a scratch folder: a refused command must leave no runs/ behind there.
mkdir -p "$tmp/work" && cd "$tmp/work"

# make_set DIR: a small, well-formed MNIST-like set (raw IDX) in DIR/mnist.
make_set() {
  python3 - "$1/mnist" <<'PY'
import os, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
def idx(path, dims, payload):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", n) for n in dims) + payload)
for prefix, n in (("train", 40), ("t10k", 10)):
    idx(f"{d}/{prefix}-images-idx3-ubyte", [n, 28, 28], bytes((i * 7) % 256 for i in range(n * 784)))
    idx(f"{d}/{prefix}-labels-idx1-ubyte", [n], bytes(i % 10 for i in range(n)))
PY
}

# check NAME: the last run must have ended with one "evolve: error:" line and exit 1 or 2.
check() {
  local name="$1" rc="$2" lines
  lines=$(wc -l <"$tmp/err")
  if [[ ($rc -eq 1 || $rc -eq 2) && $lines -eq 1 ]] && grep -q '^evolve: error: ' "$tmp/err"; then
    printf '%-28s %s\n' "$name" "$(cat "$tmp/err")"
  else
    printf 'FAIL %-23s exit %s, %s stderr lines:\n' "$name" "$rc" "$lines"; cat "$tmp/err"
    failures=$((failures + 1))
  fi
}

# says TEXT: the last error line must say TEXT (where what it names matters).
says() {
  grep -qF -- "$1" "$tmp/err" || { echo "FAIL the line above does not say '$1'"; failures=$((failures + 1)); }
}

# expect NAME ARGS...: `evolve train` on a tiny MLP with ARGS.
expect() {
  local name="$1"; shift
  timeout 60 "$evolve" train --epochs 1 --validation 10 --net mlp16x1 "$@" >"$tmp/out" 2>"$tmp/err"
  check "$name" $?
}

# case NAME PYTHON: a fresh good set, damaged by PYTHON (run in DIR/mnist), then evolve on it.
case_of() {
  local name="$1" damage="$2"; shift 2
  rm -rf "$tmp/d"; make_set "$tmp/d"
  (cd "$tmp/d/mnist" && python3 -c "$damage")
  expect "$name" --data-dir "$tmp/d" --no-verify "$@"
}

rm -rf "$tmp/empty"; mkdir -p "$tmp/empty"
expect "missing files" --data-dir "$tmp/empty"
case_of "wrong magic" "f=open('train-images-idx3-ubyte','r+b'); f.write(b'PK\x03\x04')"
case_of "unsupported type code" "f=open('train-images-idx3-ubyte','r+b'); f.seek(2); f.write(b'\x0d')"
case_of "truncated data" "import os; p='train-images-idx3-ubyte'; os.truncate(p, os.path.getsize(p) - 100)"
case_of "truncated gzip" "import gzip,os; d=open('t10k-images-idx3-ubyte','rb').read()[:-50]; os.remove('t10k-images-idx3-ubyte'); open('t10k-images-idx3-ubyte.gz','wb').write(gzip.compress(d))"
case_of "header the file can't hold" "f=open('train-images-idx3-ubyte','r+b'); f.seek(4); f.write(b'\xff\xff\xff\xff')"
case_of "header larger than the file" "f=open('train-images-idx3-ubyte','r+b'); f.seek(4); f.write(b'\x00\x01\x86\xa0')"
case_of "header overflow" "f=open('train-labels-idx1-ubyte','r+b'); f.seek(4); f.write(b'\xff\xff\xff\xff'); f=open('train-images-idx3-ubyte','r+b'); f.seek(8); f.write(b'\xff\xff\xff\xff\xff\xff\xff\xff')"
case_of "count mismatch" "import struct; d=open('train-labels-idx1-ubyte','rb').read(); open('train-labels-idx1-ubyte','wb').write(d[:4]+struct.pack('>I',39)+d[8:-1])"
case_of "label out of range" "f=open('train-labels-idx1-ubyte','r+b'); f.seek(8+5); f.write(b'\x0c')"
case_of "corrupt gzip" "import gzip,os; d=gzip.compress(open('train-labels-idx1-ubyte','rb').read()); os.remove('train-labels-idx1-ubyte'); b=bytearray(d); b[12:-8]=bytes(x^0x5a for x in b[12:-8]); open('train-labels-idx1-ubyte.gz','wb').write(bytes(b))"

case_of "a folder for a data file" "import os; os.remove('train-labels-idx1-ubyte'); os.mkdir('train-labels-idx1-ubyte')"

rm -rf "$tmp/d"; make_set "$tmp/d"
expect "checksum (MD5) mismatch" --data-dir "$tmp/d"
expect "batch 0" --data-dir "$tmp/d" --no-verify --batch 0
expect "lr nan" --data-dir "$tmp/d" --no-verify --lr nan
expect "gamma 2" --data-dir "$tmp/d" --no-verify --gamma 2
expect "population 0" --data-dir "$tmp/d" --no-verify --population 0
expect "validation too large" --data-dir "$tmp/d" --no-verify --validation 40
expect "malformed number" --data-dir "$tmp/d" --no-verify --epochs three
expect "unknown net" --data-dir "$tmp/d" --no-verify --net resnet50
# --backend cuda is refused by a build without CUDA kernels and on a machine without a device; a CUDA build
# on a GPU runs it (bench/gpu-check.sh runs this script there), into a folder of its own.
timeout 60 "$evolve" train --epochs 1 --validation 10 --net mlp16x1 --data-dir "$tmp/d" --no-verify --backend cuda \
  --population 1 --out "$tmp/cuda-run" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [[ $rc -eq 0 ]] && nvidia-smi -L >/dev/null 2>&1; then
  printf '%-28s %s\n' "cuda backend" "runs (a CUDA build on a machine with a GPU)"
else
  check "cuda without kernels" $rc
fi
# Sizes the machine cannot hold: refused before anything is allocated, under an address-space limit too.
expect "population 10^9" --data-dir "$tmp/d" --no-verify --population 1000000000
expect_limited() {
  local name="$1"; shift
  # AddressSanitizer reserves terabytes of address space for its shadow: no ulimit -v under it.
  if [[ ${EVOPLAST_SANITIZED:-0} == 1 ]]; then printf '%-28s %s\n' "$name" "skipped (ulimit -v under ASan)"; return; fi
  (ulimit -v 4000000; timeout 60 "$evolve" "$@" >"$tmp/out" 2>"$tmp/err"); check "$name" $?
}
expect_limited "net beyond the RAM" train --epochs 1 --validation 10 --data-dir "$tmp/d" --no-verify --net mlp65536x64
# 64 threads under an address-space limit hung inside OpenBLAS's allocator: now capped at the cores, with a note.
if [[ ${EVOPLAST_SANITIZED:-0} != 1 ]]; then
  if (ulimit -v 4000000; timeout 60 "$evolve" train --epochs 1 --validation 10 --net mlp16x1 --data-dir "$tmp/d" \
      --no-verify --threads 64 --out "$tmp/t64" >"$tmp/out" 2>"$tmp/err") && grep -q "threads capped at" "$tmp/err"; then
    printf '%-28s %s\n' "threads 64 (ulimit -v)" "runs; $(cat "$tmp/err")"
  else
    echo "FAIL threads 64 (ulimit -v): $(cat "$tmp/err")"; failures=$((failures + 1))
  fi
fi
expect_limited "population beyond ulimit -v" train --epochs 1 --validation 10 --data-dir "$tmp/d" --no-verify --population 2000

# `evolve run`: config keys and values, run directories, checkpoints.
expect_run() {
  local name="$1"; shift
  timeout 60 "$evolve" run --quiet "$@" >"$tmp/out" 2>"$tmp/err"
  check "$name" $?
}
printf '[ga]\npopulaton = 4\n' >"$tmp/typo.toml"
expect_run "unknown config key" --config "$tmp/typo.toml" --out "$tmp/r1"
expect_run "unknown --set key" --set mutation=0.3 --out "$tmp/r1"
expect_run "population < 2" --set ga.population=1 --out "$tmp/r1"
expect_run "tournament > population" --set ga.tournament=9 --set ga.population=4 --out "$tmp/r1"
expect_run "rate outside [0, 1]" --set ga.crossover_rate=1.5 --out "$tmp/r1"
expect_run "broken TOML" --config <(printf '[ga\n') --out "$tmp/r1"
expect_run "unwritable run directory" --out /proc/evoplast-run
expect_run "unknown precision" --set precision=fp16 --out "$tmp/r1"
expect_run "tf32x3 on the CPU backend" --precision tf32x3 --backend cpu --population 4 --out "$tmp/r1"
# Numbers and names parsed whole: no wrap-around, no prefix read as the whole.
expect_run "epochs 2^32 + 1" --set train.epochs=4294967297 --out "$tmp/r1"
expect_run "population 2^32 + 2" --set ga.population=4294967298 --out "$tmp/r1"
expect_run "epochs 10^12" --set train.epochs=1000000000000 --out "$tmp/r1"
expect_run "seed -1 (config)" --set seed=-1 --out "$tmp/r1"
expect_run "seed -1 (flag)" --seed -1 --out "$tmp/r1"
expect_run "population 2.5" --set ga.population=2.5 --out "$tmp/r1"
expect_run "population 1e9 (memory)" --set ga.population=1e9 --out "$tmp/r1"
expect_run "protocol permuted3x" --set train.protocol=permuted3x --out "$tmp/r1"
expect_run "--config a folder" --config "$tmp" --out "$tmp/r1"
# A device that never ends is read up to a cap and refused, never until the memory runs out.
expect_run "--config /dev/zero" --config /dev/zero --out "$tmp/r1"
says "/dev/zero: more than 64 MiB from a pipe or device"
printf '{}' >"$tmp/empty-rule.json"
expect_eval() {
  local name="$1"; shift
  timeout 60 "$evolve" eval "$@" >"$tmp/out" 2>"$tmp/err"
  check "$name" $?
}
expect_eval "rule file {}" --rule "$tmp/empty-rule.json"
expect_eval "rule a folder" --rule "$tmp"
says "a folder, not a rule file"
expect_eval "rule /dev/zero" --rule /dev/zero
says "/dev/zero: more than 64 MiB from a pipe or device"
expect_eval "fisher samples 0" --rule ewc --fisher-samples 0
# Counts below their range are refused by name, never wrapped or read as "all".
expect_eval "eval seed base -1" --rule fly --seed-base -1
says "--seed-base"
expect_eval "eval val per task -2" --rule fly --val-per-task -2
says "-2 — must be 0 (all) or more"
expect_eval "eval validation 0" --rule fly --validation 0
says "0 — must be at least 1"
expect_eval "eval threads -3" --rule fly --threads -3
says "-3 — must be 0 (all cores) or more"
expect_eval "eval epochs 0" --rule fly --epochs 0
says "--epochs 0: must be at least 1"
expect_eval "eval lr nan" --rule fly --lr nan
says "--lr nan: must be a positive number"
expect_eval "eval batch 0" --rule fly -b 0
says "--batch 0: must be in [1, 65536]"
expect "train threads -1" --data-dir "$tmp/d" --no-verify --threads -1
says "-1 — must be 0 (all cores) or more"
expect_run "run threads -2" --set train.threads=-2 --out "$tmp/r1"
says "'train.threads': -2"
# A rule named twice would have its results merged under one label.
expect_eval "eval a rule twice" --rule fly,finetune,fly
says "'fly' is given twice"
touch "$tmp/a-file"
expect_eval "eval --out a file" --rule fly --out "$tmp/a-file"
says "a file, not a folder"
expect "train --out a file" --data-dir "$tmp/d" --no-verify --out "$tmp/a-file"
says "a file, not a folder"
expect_run "run --out a file" --out "$tmp/a-file"
says "a file, not a folder"
rm -rf "$tmp/d"; make_set "$tmp/d"
small=(-P 2 -g 1 --data-dir "$tmp/d" --no-verify --set train.validation=10 --set train.train_per_task=20
       --set train.val_per_task=5 --set train.test_per_task=5 --set ga.seed_rules=baseline
       --set train.net=mlp8x1 --set ga.tournament=1)
"$evolve" run --quiet "${small[@]}" --out "$tmp/r2" >/dev/null 2>&1 || true
"$evolve" run --quiet "${small[@]}" --out "$tmp/r3" >/dev/null 2>&1 || true
if [[ -f $tmp/r2/checkpoint.json && -f $tmp/r3/checkpoint.json ]]; then
  printf '{"ga": [' >"$tmp/r2/checkpoint.json"
  expect_run "corrupt checkpoint" --resume "$tmp/r2" --no-verify
  sed -i 's/population = 2/population = 3/' "$tmp/r3/config.toml"
  expect_run "mismatched checkpoint" --resume "$tmp/r3" --no-verify
  expect_run "run directory in use" "${small[@]}" --out "$tmp/r2"
  # Checkpoint fields that do not fit the run: refused whole, never half-used.
  "$evolve" run --quiet "${small[@]}" -g 2 --out "$tmp/r4" >/dev/null 2>&1 || true
  cp "$tmp/r4/checkpoint.json" "$tmp/good-checkpoint.json"
  edit_checkpoint() {  # NAME PYTHON-ON-ck
    cp "$tmp/good-checkpoint.json" "$tmp/r4/checkpoint.json"
    python3 - "$tmp/r4/checkpoint.json" "$2" <<'PY'
import json, sys
p = sys.argv[1]; ck = json.load(open(p)); exec(sys.argv[2]); json.dump(ck, open(p, "w"))
PY
    expect_run "$1" --resume "$tmp/r4" --no-verify
  }
  edit_checkpoint "checkpoint generation > run's" "ck['ga']['generation'] = 7; ck['generations_done'] = 7"
  edit_checkpoint "checkpoint generation < 0" "ck['ga']['generation'] = -1; ck['generations_done'] = -1"
  edit_checkpoint "checkpoint population ≠ config" "ck['ga']['config']['population'] = 3; ck['ga']['population'].append(ck['ga']['population'][0])"
  edit_checkpoint "checkpoint jsonl_bytes 0" "ck['jsonl_bytes'] = 0"
  edit_checkpoint "checkpoint jsonl_bytes mid-line" "ck['jsonl_bytes'] -= 3"
  # A count that is no count is named as the file holds it, never wrapped into another number.
  edit_checkpoint "checkpoint jsonl_bytes -5" "ck['jsonl_bytes'] = -5"
  says "jsonl_bytes -5 is not a count"
  edit_checkpoint "checkpoint generations_done 1e12" "ck['generations_done'] = 10**12"
  says "generations_done 1000000000000 disagrees"
  edit_checkpoint "checkpoint NaN gene" "ck['ga']['population'][0]['genome'][0] = float('nan')"
  cp "$tmp/good-checkpoint.json" "$tmp/r4/checkpoint.json"
  expect_eval "rule evolved for another net" --rule "$tmp/r4/best_rule.json" --net mlp16x2 --data-dir "$tmp/d" --no-verify
  # `evolve report` on damaged records: one line each, never a crash.
  edit_record() {  # NAME FILE PYTHON-ON-(rows|best)
    rm -rf "$tmp/rep" && cp -r "$tmp/r4" "$tmp/rep"
    python3 - "$tmp/rep" "$2" "$3" <<'PY'
import json, sys
d, f, code = sys.argv[1], sys.argv[2], sys.argv[3]
if f == "generations.jsonl":
    rows = [json.loads(l) for l in open(f"{d}/{f}")]
    exec(code)
    open(f"{d}/{f}", "w").write("".join(json.dumps(r) + "\n" for r in rows))
else:
    best = json.load(open(f"{d}/{f}")); exec(code); json.dump(best, open(f"{d}/{f}", "w"))
PY
    timeout 60 "$evolve" report "$tmp/rep" >"$tmp/out" 2>"$tmp/err"
    check "$1" $?
  }
  edit_record "report: null val loss" generations.jsonl "rows[0]['epoch_val_loss'][0] = None"
  edit_record "report: null coefficient" best_rule.json "best['rule']['hidden'][0]['alpha'] = None"
  edit_record "report: string coefficient" best_rule.json "best['rule']['output']['A'] = 'big'"
  edit_record "report: ragged R_test" best_rule.json "best['R_test'] = [[0.5, 0.5], [0.5]]"
  # --resume keeps the run's configuration: options that would change it are refused…
  expect_run "resume with --set" --resume "$tmp/r4" --set ga.population=5
  expect_run "resume with --seed and -g" --resume "$tmp/r4" --seed 9 -g 7
  expect_run "resume with --config" --resume "$tmp/r4" --config "$tmp/typo.toml"
  # …and the data may move: the run resumes from its new place with --data-dir.
  mv "$tmp/d" "$tmp/moved"
  expect_run "resume, data moved" --resume "$tmp/r4" --no-verify
  if "$evolve" run --quiet --resume "$tmp/r4" --data-dir "$tmp/moved" --no-verify >"$tmp/out" 2>"$tmp/err"; then
    printf '%-28s %s\n' "resume --data-dir (moved)" "accepted: $(tail -1 "$tmp/out")"
  else
    echo "FAIL resume --data-dir (moved): $(cat "$tmp/err")"; failures=$((failures + 1))
  fi
  mv "$tmp/moved" "$tmp/d"
else
  echo "FAIL could not make a small run for the checkpoint cases"; failures=$((failures + 1))
fi
expect_run "no checkpoint to resume" --resume "$tmp/empty"
expect_limited "run population 5000 (ulimit)" run --quiet "${small[@]}" -P 5000 --set ga.tournament=3 --set train.net=mlp1000x2 --out "$tmp/r5"
if [[ -e $tmp/r5 ]]; then echo "FAIL a refused run left $tmp/r5 behind"; failures=$((failures + 1)); fi

# A full disk: one line naming the file and what to do, and no half-written *.tmp left.
if mkdir -p "$tmp/full" && mount -t tmpfs -o size=48k tmpfs "$tmp/full" 2>/dev/null; then
  expect_run "disk full" "${small[@]}" --out "$tmp/full/run"
  if compgen -G "$tmp/full/run/*.tmp" >/dev/null; then
    echo "FAIL disk full left $(ls "$tmp/full/run"/*.tmp)"; failures=$((failures + 1))
  fi
  umount "$tmp/full"
else
  printf '%-28s %s\n' "disk full" "skipped (cannot mount a small tmpfs here)"
fi

# Not even an empty runs/: a refused command makes nothing, or removes what it made.
if [[ -e $tmp/work/runs ]]; then
  echo "FAIL refused commands left runs/ behind: $(ls -A "$tmp/work/runs" | paste -sd' ')"; failures=$((failures + 1))
fi

if ((failures)); then echo "$failures bad input(s) not handled"; exit 1; fi
echo "every bad input ended in one line and a non-zero exit"
