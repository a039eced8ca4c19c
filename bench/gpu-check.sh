#!/usr/bin/env bash
# shellcheck disable=SC2054 # -P and --population take one comma-separated list
# The GPU check, run on the device machine from the repository root with the
# archive of bench/pack-gpu-build.sh carried in gpu-pack/ (or a build in
# build-gpu/; see the README, "Checking on a GPU"). Steps, most
# telling first, each bounded in time, so one call of the device tool (600 s)
# ends with the table printed, whatever hangs or is slow:
#   1. the CUDA tests (the defaults: fp32, convolutions and fused steps on our
#      tile kernel by FMAs, plain GEMMs on cuBLAS), and compute-sanitizer
#      (memcheck, racecheck, synccheck) over the CUDA kernel tests (the
#      trainings left out: minutes under the sanitizer),
#   2. bench_population (backprop and the hebb rule, fp32, TF32, split TF32,
#      bf16; steps as CUDA graphs; fp32 also as im2col + cuBLAS with the steps
#      composed, the fp32 path before the tile kernel ran in fp32; and with
#      the pool's error gathered as the tiles load, the way before 2026-12-05) beside
#      torch_reference.py (TF32 off and on) in the same call, on the same
#      card; bench_kernels per kernel; the tile loops' SASS counted (bench/ptx_mix.py --sass),
#   3. the CUDA tests again with every GEMM on our tile kernel (fp32), with
#      cuDNN, and with every GEMM on our tile kernel's tensor cores (tf32x3); the CPU tests, end-to-end MNIST, the
#      bad-input CLI and kill-and-resume tests,
#   4. what fusion, graphs, cuDNN, our tiled GEMM and mixed populations change
#      (EVOPLAST_FUSION=0 composes the fused steps; EVOPLAST_CUDA_GRAPHS=0
#      launches kernel by kernel); a short train on each backend,
#   4b. the seed baseline's 14 epochs at fp32, tf32 and bf16 (test accuracy),
#   5. the seed preset end to end, timed (optional: GPU_CHECK_SEED=1; about 100 s a
#      generation on an H200 in fp32, 2026-12-04: give it the budget alone),
#   6. Nsight Compute's top three kernels (optional: GPU_CHECK_NCU=1).
# GPU_CHECK_BUDGET_S (default 520) bounds the whole: a step that would start
# with less than 15 s left is skipped, and one that starts runs at most until
# the budget ends (its log says so). GPU_CHECK_STEPS, an extended regex,
# runs only the steps whose names match (a second call for those skipped).
# Logs: one per step, packed at the end into $OUT/gpu-check-logs.tar.gz beside
# summary.txt (the device tool brings back 8 files at most); the table is
# also printed last, with a line that sets the figures beside #14's four
# targets (4× PyTorch at P = 64, hebb ≤ 1.25× backprop, the seed preset
# under 60 s, ≥ 99.0% after 14 epochs).
set -uo pipefail
# The build and data as bench/pack-gpu-build.sh packed them (one archive: the folders are over what travels).
# xz where the machine has it, else python3's tarfile and lzma (the device's python3 is PyTorch's).
if [[ -f gpu-pack/build.tar.xz ]]; then
  rm -rf build-gpu data-gpu
  if command -v xz >/dev/null; then
    tar -xJf gpu-pack/build.tar.xz
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(filter="data")' gpu-pack/build.tar.xz
  fi || { echo "gpu-check: gpu-pack/build.tar.xz does not unpack" >&2; exit 1; }
fi
build="${BUILD:-build-gpu}"
out="${OUT:-gpu-check-out}"
logs="$(mktemp -d)"
mkdir -p "$out"
budget_s="${GPU_CHECK_BUDGET_S:-520}"
wanted="${GPU_CHECK_STEPS:-.}"
start_s=$(date +%s)
# Libraries and data carried from the build machine (bench/pack-gpu-build.sh).
export LD_LIBRARY_PATH="$PWD/$build/lib:${LD_LIBRARY_PATH:-}"
[[ -d data-gpu ]] && export EVOPLAST_DATA_DIR="$PWD/data-gpu"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "card: ${card:-unknown}" | tee "$logs/card.txt"

# step NAME LIMIT_S COMMAND…: COMMAND with its output in $logs/NAME.log, for at
# most LIMIT_S seconds and never past the budget; how it ended in ended[NAME].
declare -A ended
steps=()  # in the order they came
step() {
  local name=$1 limit=$2
  shift 2
  steps+=("$name")
  [[ "$name" =~ $wanted ]] || { ended[$name]="not run (GPU_CHECK_STEPS)"; return 0; }
  local left=$((budget_s - ($(date +%s) - start_s)))
  if ((left < 15)); then
    ended[$name]="skipped (the ${budget_s} s budget was spent)"
    echo "${ended[$name]}" >"$logs/$name.log"
    return 0
  fi
  ((limit > left)) && limit=$left
  timeout --kill-after=5 "$limit" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  if ((rc == 124 || rc == 137)); then
    ended[$name]="timed out after ${limit} s"
    echo "gpu-check: ${ended[$name]}" >>"$logs/$name.log"
  else
    ended[$name]="exit $rc"
  fi
  echo "$(printf '%4d' $(($(date +%s) - start_s))) s  $name: ${ended[$name]}"
}
populations=(-P 1,10,64,256,1024 --steps 20)
few=(-P 1,10,64 --steps 20)
bench="$build/bench_population"
torch=(env PYTHONUNBUFFERED=1 python3 bench/torch_reference.py --population 1,10,64,256,1024 --steps 20)

# 1. Correctness first: the test executables directly (ctest's files hold the build machine's absolute paths),
# then under the sanitizers (about 65 s in all on an H200, 2026-12-04).
step test_cuda 150 "$build/tests/test_cuda"
if command -v compute-sanitizer >/dev/null; then
  # EVOPLAST_CUDA_SYNC=1 makes a fault name its launch; the trainings are minutes under the sanitizer.
  trainings="*training*,*populations of 4*,*accuracy matrix*,*diverging*,*slice of the population*"
  for tool in memcheck racecheck synccheck; do
    step "sanitizer_$tool" 120 env EVOPLAST_CUDA_SYNC=1 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$build/tests/test_cuda" "--test-case-exclude=$trainings"
  done
else
  for tool in memcheck racecheck synccheck; do ended[sanitizer_$tool]="compute-sanitizer not on the PATH"; done
fi
# 2. The figures the issue's targets are about.
step bench_backprop 60 "$bench" "${populations[@]}"
step bench_hebb 60 "$bench" "${populations[@]}" --rule hebb
# The pool's error made as the tiles load (the first way) beside staged (the default, above): the same call.
step bench_gathered 30 env EVOPLAST_POOLED_ERROR=gathered "$bench" "${few[@]}"
step bench_hebb_gathered 30 env EVOPLAST_POOLED_ERROR=gathered "$bench" "${few[@]}" --rule hebb
# fp32 by im2col + cuBLAS, every step composed: which fp32 path should be the default.
step bench_im2col 30 env EVOPLAST_CONV=im2col EVOPLAST_FUSION=0 "$bench" "${few[@]}"
step bench_hebb_im2col 30 env EVOPLAST_CONV=im2col EVOPLAST_FUSION=0 "$bench" "${few[@]}" --rule hebb
step torch 90 "${torch[@]}"
step bench_tf32 45 "$bench" "${populations[@]}" --precision tf32
step torch_tf32 90 "${torch[@]}" --tf32
step bench_tf32x3 45 "$bench" "${populations[@]}" --precision tf32x3
step bench_hebb_tf32x3 60 "$bench" "${populations[@]}" --precision tf32x3 --rule hebb
step bench_bf16 60 "$bench" "${populations[@]}" --precision bf16
step bench_kernels 90 "$build/bench_kernels"
# The tile kernels as the pack's other bench_kernels_* builds them (bench/pack-gpu-build.sh says which: two
# shared tile sets, copied by cp.async and through registers) beside the default three sets above: what the
# third set buys and what cp.async buys, in one call.
for variant in "$build"/bench_kernels_*; do
  [[ -x "$variant" ]] && step "$(basename "$variant")" 60 "$variant" --tiles-only
done
# The machine code of the tile kernels' main loops, counted (seconds, no GPU): what bench/ptx_mix.py
# estimates from PTX on machines without cuobjdump.
step sass_mix 30 python3 bench/ptx_mix.py --sass "$build/bench_kernels"
# 3. The other test runs: every GEMM on our tiled kernel, cuDNN's convolutions, split TF32 at fp32 tolerances.
step test_cuda_tiled 120 env EVOPLAST_GEMM=tiled "$build/tests/test_cuda"
step test_cuda_cudnn 120 env EVOPLAST_CONV=cudnn "$build/tests/test_cuda"
step test_cuda_tf32x3 120 env EVOPLAST_PRECISION=tf32x3 "$build/tests/test_cuda"
step test_e2e 120 "$build/tests/test_e2e"
step test_cpu 120 "$build/tests/test_cpu"
step cli 60 bash tests/cli_bad_inputs.sh "$build/evolve"
step resume 90 bash tests/resume_after_kill.sh "$build/evolve" "${EVOPLAST_DATA_DIR:-data}"
# 4. What each choice buys.
step bench_cudnn 45 env EVOPLAST_CONV=cudnn "$bench" "${populations[@]}"
step bench_tiled 45 env EVOPLAST_GEMM=tiled "$bench" "${populations[@]}"
# Every step launched kernel by kernel instead of as one CUDA graph (what the graph saves).
step bench_tf32x3_nographs 30 env EVOPLAST_CUDA_GRAPHS=0 "$bench" "${few[@]}" --precision tf32x3
# The fused steps composed instead (conv → ReLU → pool → dropout; a plastic conv's stacked rows;
# backprop's dense Adadelta).
step bench_tf32x3_unfused 30 env EVOPLAST_FUSION=0 "$bench" "${few[@]}" --precision tf32x3
step bench_hebb_tf32x3_unfused 30 env EVOPLAST_FUSION=0 "$bench" "${few[@]}" --precision tf32x3 --rule hebb
# A population mixing feedback alignment in (as evolution makes): each net's W or B read where it
# lies, or picked into a copy.
step bench_hebb_fa_tf32x3 30 "$bench" "${few[@]}" --precision tf32x3 --rule hebb --mixed-fa
step bench_hebb_fa_tf32x3_unfused 30 env EVOPLAST_FUSION=0 "$bench" "${few[@]}" --precision tf32x3 --rule hebb \
  --mixed-fa
# Nets by backprop, FA, DFA and none in turn: errors routed as conv2 reads them, no dx for nets that discard it.
step bench_hebb_mixed_tf32x3 30 "$bench" "${few[@]}" --precision tf32x3 --rule hebb --mixed-feedback
step bench_hebb_mixed_tf32x3_unfused 30 env EVOPLAST_FUSION=0 "$bench" "${few[@]}" --precision tf32x3 --rule hebb \
  --mixed-feedback
# The population spread over MPI ranks on this one card (issue: per-rank and total network-images/s),
# where the machine has mpirun (the device machine seen so far had none).
if command -v mpirun >/dev/null; then
  for k in 1 2; do
    step "bench_mpi_$k" 60 mpirun --oversubscribe --allow-run-as-root -np "$k" "$bench" -P 64 --steps 20 \
      --precision tf32x3
  done
else
  ended[bench_mpi_1]="mpirun not on the PATH"
  ended[bench_mpi_2]="mpirun not on the PATH"
fi
# A short train on each backend, side by side.
step train_cuda 60 "$build/evolve" train --backend cuda --epochs 1 --train-limit 20000 --validation 2000
step train_cpu 90 "$build/evolve" train --backend cpu --epochs 1 --train-limit 20000 --validation 2000 --threads 16
# The seed's baseline, 14 epochs of full MNIST (seed 1), at fp32, tf32 and bf16: whether a tensor-core
# precision keeps the 99.0% (#14), beside the CPU's emulation of the operands' rounding
# (results/precision-emulated: fp32 99.13%, tf32 99.11%, bf16 99.08%); what differs is the tensor core's sums.
for p in fp32 tf32 bf16; do
  step "accuracy_$p" 150 "$build/evolve" train --backend cuda --precision "$p" --epochs 14 --quiet \
    --out "$(mktemp -d)/accuracy-$p"
done
# 5 and 6, optional: minutes of device time each.
if [[ "${GPU_CHECK_SEED:-0}" == 1 ]]; then
  seed_start=$(date +%s)
  seed_dir="$(mktemp -d)/seed-run"  # its checkpoints stay here: only the small records travel back
  step seed_run 300 "$build/evolve" run --preset seed --quiet --out "$seed_dir"
  seed_s=$(($(date +%s) - seed_start))
  mkdir -p "$logs/seed-run"
  cp "$seed_dir"/*.jsonl "$seed_dir"/*.json "$seed_dir"/*.toml "$seed_dir"/*.md "$logs/seed-run/" 2>/dev/null
fi
# Nsight Compute over a few steps of the P = 64 CNN on tensor cores: the top three kernels by time.
if [[ "${GPU_CHECK_NCU:-0}" == 1 ]] && ! command -v ncu >/dev/null; then ended[ncu]="ncu not on the PATH"; fi
if [[ "${GPU_CHECK_NCU:-0}" == 1 ]] && command -v ncu >/dev/null; then
  step ncu 240 ncu --launch-skip 300 --launch-count 60 --section SpeedOfLight \
    "$bench" -P 64 --steps 5 --precision tf32x3 --rule hebb
fi

summarise() {
echo
echo "=== summary (${card:-unknown}; $(($(date +%s) - start_s)) s of a ${budget_s} s budget) ==="
cases() { grep -E '^\[doctest\] test cases' "$logs/$1.log" 2>/dev/null | tail -1; }
how() { echo "${ended[$1]:-not run}"; }
for t in test_cuda test_cuda_tiled test_cuda_cudnn test_cuda_tf32x3 test_e2e test_cpu; do
  printf '%-17s %s — %s\n' "$t:" "$(how $t)" "$(cases $t)"
done
echo "cli bad inputs: $(how cli); resume after SIGKILL: $(how resume)"
echo "compute-sanitizer: $(for t in memcheck racecheck synccheck; do
  echo -n "$t $(how sanitizer_$t) ($(grep -E 'ERROR SUMMARY' "$logs/sanitizer_$t.log" 2>/dev/null | tail -1)); "
done)"
echo "MPI ranks on this card (P = 64, tf32x3): 1 rank $(how bench_mpi_1), 2 ranks $(how bench_mpi_2):"
cat "$logs/bench_mpi_1.log" "$logs/bench_mpi_2.log" 2>/dev/null | grep -E "^ *(64|rank|total)" | sed 's/^/  /'
for p in fp32 tf32 bf16; do
  echo "14 epochs of the seed baseline, $p: $(how "accuracy_$p") $(grep -E '^test' "$logs/accuracy_$p.log" 2>/dev/null)"
done
for b in cuda cpu; do
  echo "train 1 epoch (20k images), $b: $(how train_$b) $(grep -E '^epoch|^test' "$logs/train_$b.log" 2>/dev/null |
    tr -s ' ' | cut -c1-150 | paste -sd'|')"
done
echo "not finished (skipped, timed out or failed): $(for k in "${steps[@]}"; do
  [[ "${ended[$k]}" == "exit 0" || "${ended[$k]}" == "not run (GPU_CHECK_STEPS)" ]] || echo -n "$k "; done)"
python3 - "$logs" "${seed_s:-}" "$(how seed_run)" <<'PY'
import sys, re
d, seed_s, seed_ended = sys.argv[1], sys.argv[2], sys.argv[3]
def table(path):
    rows = {}
    try: lines = open(path, errors="replace").readlines()
    except FileNotFoundError: return rows  # a step skipped or not asked for: its columns read 0
    for line in lines:
        f = line.split()
        if len(f) >= 3 and f[0].isdigit() and f[1] != "does":  # "P does not fit: …" rows left out
            rows[int(f[0])] = float(f[-1])
    return rows
ours, hebb, torch = table(f"{d}/bench_backprop.log"), table(f"{d}/bench_hebb.log"), table(f"{d}/torch.log")
dnn, tiled = table(f"{d}/bench_cudnn.log"), table(f"{d}/bench_tiled.log")
tf32, tf32x3, torch_tf32 = table(f"{d}/bench_tf32.log"), table(f"{d}/bench_tf32x3.log"), table(f"{d}/torch_tf32.log")
hebb_x3, no_graphs = table(f"{d}/bench_hebb_tf32x3.log"), table(f"{d}/bench_tf32x3_nographs.log")
bf16 = table(f"{d}/bench_bf16.log")
unfused, hebb_unfused = table(f"{d}/bench_tf32x3_unfused.log"), table(f"{d}/bench_hebb_tf32x3_unfused.log")
hebb_fa, hebb_fa_unfused = table(f"{d}/bench_hebb_fa_tf32x3.log"), table(f"{d}/bench_hebb_fa_tf32x3_unfused.log")
hebb_mixed = table(f"{d}/bench_hebb_mixed_tf32x3.log")
hebb_mixed_unfused = table(f"{d}/bench_hebb_mixed_tf32x3_unfused.log")
im2col, hebb_im2col = table(f"{d}/bench_im2col.log"), table(f"{d}/bench_hebb_im2col.log")
gathered, hebb_gathered = table(f"{d}/bench_gathered.log"), table(f"{d}/bench_hebb_gathered.log")
print("network-images/s, seed CNN, batch 64, fp32 (ours: implicit-GEMM conv and fused steps by FMAs, cuBLAS for")
print("the other GEMMs, unless named; 'im2col': im2col conv + cuBLAS, every step composed; 'gathered': the pool's")
print("error made as the tiles load, EVOPLAST_POOLED_ERROR=gathered, where ours stages it)")
print(f"{'P':>5} {'backprop':>10} {'hebb':>10} {'bp gathered':>12} {'hebb gath.':>11} {'bp im2col':>10} "
      f"{'hebb im2col':>12} {'cuDNN conv':>11} {'tiled GEMM':>11} {'PyTorch':>10} {'bp/PyTorch':>11} "
      f"{'hebb/PyTorch':>13}")
for P in sorted(set(ours) | set(torch)):
    o, h, t = ours.get(P), hebb.get(P), torch.get(P)
    r = lambda a: f"{a / t:.2f}x" if a and t else "—"
    print(f"{P:>5} {o or 0:>10.0f} {h or 0:>10.0f} {gathered.get(P, 0):>12.0f} {hebb_gathered.get(P, 0):>11.0f} "
          f"{im2col.get(P, 0):>10.0f} {hebb_im2col.get(P, 0):>12.0f} "
          f"{dnn.get(P, 0):>11.0f} {tiled.get(P, 0):>11.0f} {t or 0:>10.0f} {r(o):>11} {r(h):>13}")
print("tensor cores (ours, backprop) beside PyTorch with TF32 allowed")
print(f"{'P':>5} {'tf32':>10} {'tf32x3':>10} {'bf16':>10} {'x3 no graph':>12} {'x3 unfused':>11} {'hebb tf32x3':>12} "
      f"{'hebb unfused':>13} {'PyTorch tf32':>13} {'tf32/PyTorch':>13} {'hebb/bp x3':>11}")
for P in sorted(set(tf32) | set(torch_tf32)):
    a, b, ng, hb, t = tf32.get(P), tf32x3.get(P), no_graphs.get(P), hebb_x3.get(P), torch_tf32.get(P)
    print(f"{P:>5} {a or 0:>10.0f} {b or 0:>10.0f} {bf16.get(P, 0):>10.0f} {ng or 0:>12.0f} {unfused.get(P, 0):>11.0f} "
          f"{hb or 0:>12.0f} {hebb_unfused.get(P, 0):>13.0f} "
          f"{t or 0:>13.0f} {(f'{a / t:.2f}x' if a and t else '—'):>13} {(f'{hb / b:.2f}' if hb and b else '—'):>11}")
print("hebb tf32x3 with every other net by feedback alignment: W or B read where they lie (fused) or picked into a copy;")
print("and with nets by backprop, FA, DFA and none in turn: errors routed as read (fused) or stored")
print(f"{'P':>5} {'mixed FA':>10} {'unfused':>10} {'mixed all':>10} {'unfused':>10}")
for P in sorted(set(hebb_fa) | set(hebb_mixed)):
    print(f"{P:>5} {hebb_fa.get(P, 0):>10.0f} {hebb_fa_unfused.get(P, 0):>10.0f} {hebb_mixed.get(P, 0):>10.0f} "
          f"{hebb_mixed_unfused.get(P, 0):>10.0f}")
# #14's four targets in one line (— where a step did not run).
def ratio(a, b, fmt):
    return fmt.format(a / b) if a and b else "—"
def accuracy(p):
    try: m = re.search(r"^test.*?acc ([0-9.]+)%", open(f"{d}/accuracy_{p}.log", errors="replace").read(), re.M)
    except FileNotFoundError: return "—"
    return f"{m.group(1)}%" if m else "—"
print("targets (#14), P = 64: backprop / PyTorch " + ratio(ours.get(64), torch.get(64), "{:.2f}x") + " fp32, " +
      ratio(tf32.get(64), torch_tf32.get(64), "{:.2f}x") + " TF32 (target ≥ 4x); hebb's step / backprop's " +
      ratio(ours.get(64), hebb.get(64), "{:.2f}") + " fp32 (target ≤ 1.25); seed preset " +
      (f"{seed_s} s, {seed_ended}" if seed_s else "—") +
      " (target < 60 s, GPU_CHECK_SEED=1); 14 epochs fp32 " + accuracy("fp32") + " (target ≥ 99.0%), tf32 " +
      accuracy("tf32") + ", bf16 " + accuracy("bf16"))
PY
echo; cat "$logs/bench_kernels.log" 2>/dev/null || echo "bench_kernels: $(how bench_kernels)"
for sets in 1 2; do
  echo; echo "tile kernels with $sets shared tile set(s) ($(how "bench_kernels_${sets}buf")):"
  cat "$logs/bench_kernels_${sets}buf.log" 2>/dev/null
done
echo; echo "SASS of the fp32 tile loops, one 16-deep slice ($(how sass_mix); every precision in sass_mix.log):"
grep -E 'rest/work|\(Precision\)0[,>]' "$logs/sass_mix.log" 2>/dev/null | cut -c1-200 | head -16
echo; echo "ncu (P = 64, hebb, tf32x3; $(how ncu)): top kernels by time"
python3 - "$logs/ncu.log" <<'PY'
import re, sys, collections
time, sm, mem, name = collections.Counter(), {}, {}, None
units = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}
try:
    for line in open(sys.argv[1], errors="replace"):
        plain = line.replace("(anonymous namespace)::", "")
        m = re.match(r"\s{2}(?:void )?(\S[^(<]*)[(<].*\(\d+, \d+, \d+\)x\(\d+, \d+, \d+\)", plain)
        if m:
            name = m.group(1).strip().split("::")[-1]
            continue
        f = line.split()
        if name and len(f) >= 3 and f[0] == "Duration" and f[1] in units:
            time[name] += float(f[2].replace(",", "")) * units[f[1]]
        elif name and len(f) >= 4 and f[:3] == ["Compute", "(SM)", "Throughput"]:
            sm[name] = f[-1]
        elif name and len(f) >= 3 and f[:2] == ["Memory", "Throughput"] and f[2] == "%":
            mem[name] = f[-1]
except FileNotFoundError:
    print("  no ncu log"); sys.exit(0)
total = sum(time.values()) or 1
for k, t in time.most_common(3):
    print(f"  {k:<40} {t:10.1f} us ({100 * t / total:4.1f}%)  SM {sm.get(k, '?')}%  memory {mem.get(k, '?')}%")
PY
if [[ "${GPU_CHECK_SEED:-0}" == 1 ]]; then echo "seed preset end to end: $(how seed_run), ${seed_s} s"; fi
}
summarise | tee "$out/summary.txt"
# Every log in one archive (the device tool brings back 8 files at most, 16 MiB each); a log is cut to its
# last 2 MiB first where the archive would be larger than that.
tar -czf "$out/gpu-check-logs.tar.gz" -C "$logs" .
if (($(stat -c %s "$out/gpu-check-logs.tar.gz") > 15 * 1024 * 1024)); then
  find "$logs" -type f -size +2M -exec sh -c 'tail -c 2M "$1" >"$1.tail" && mv "$1.tail" "$1"' _ {} \;
  tar -czf "$out/gpu-check-logs.tar.gz" -C "$logs" .
fi
echo "logs: $out/gpu-check-logs.tar.gz ($(du -h "$out/gpu-check-logs.tar.gz" | cut -f1)), the table: $out/summary.txt"
