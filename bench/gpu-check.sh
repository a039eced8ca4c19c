#!/usr/bin/env bash
# The GPU check, run on the device machine from the repository root with a
# build carried in build-gpu/ (see the README, "Checking on a GPU"):
#   1. every test executable, the CUDA tests with cuBLAS, with our tiled GEMM,
#      with cuDNN, and with every GEMM on our tensor-core kernel (tf32x3),
#   2. bench_population (backprop and the hebb rule; steps as CUDA graphs,
#      and once launched directly) beside torch_reference.py in the same
#      call, on the same card,
#   3. compute-sanitizer (memcheck, racecheck, synccheck) over the CUDA kernel
#      tests (the trainings left out: minutes under the sanitizer),
#   4. the seed preset end to end, timed (optional: GPU_CHECK_SEED=1),
#   5. Nsight Compute's top three kernels (optional: GPU_CHECK_NCU=1).
# EVOPLAST_FUSION=0 runs show what the fused steps buy (conv steps, dense Adadelta epilogue).
# Full logs go to $OUT (or ./gpu-check-out); a short table is printed last.
set -uo pipefail
build="${BUILD:-build-gpu}"
out="${OUT:-gpu-check-out}"
mkdir -p "$out"
# Libraries and data carried from the build machine (bench/pack-gpu-build.sh).
export LD_LIBRARY_PATH="$PWD/$build/lib:${LD_LIBRARY_PATH:-}"
[[ -d data-gpu ]] && export EVOPLAST_DATA_DIR="$PWD/data-gpu"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "card: ${card:-unknown}" | tee "$out/card.txt"

# The test executables directly: ctest's files hold the build machine's absolute paths.
"$build/tests/test_cpu" >"$out/test_cpu.log" 2>&1
cpu_rc=$?
"$build/tests/test_cuda" >"$out/test_cuda.log" 2>&1
cuda_rc=$?
EVOPLAST_GEMM=tiled "$build/tests/test_cuda" >"$out/test_cuda_tiled.log" 2>&1
tiled_rc=$?
EVOPLAST_CONV=cudnn "$build/tests/test_cuda" >"$out/test_cuda_cudnn.log" 2>&1
cudnn_rc=$?
# Every GEMM on our tensor-core kernel in split TF32: the suite at its fp32 tolerances.
EVOPLAST_PRECISION=tf32x3 "$build/tests/test_cuda" >"$out/test_cuda_tf32x3.log" 2>&1
tf32x3_rc=$?
"$build/tests/test_e2e" >"$out/test_e2e.log" 2>&1
e2e_rc=$?
# The kernels under compute-sanitizer; EVOPLAST_CUDA_SYNC=1 makes a fault name its launch.
sanitize_rc=""
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck synccheck; do
    EVOPLAST_CUDA_SYNC=1 timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 9 "$build/tests/test_cuda" \
      "--test-case-exclude=*training*,*populations of 4*,*accuracy matrix*" >"$out/sanitizer_$tool.log" 2>&1
    sanitize_rc+="$tool: exit $? ($(grep -E 'ERROR SUMMARY' "$out/sanitizer_$tool.log" | tail -1)); "
  done
else
  sanitize_rc="compute-sanitizer not on the PATH"
fi
bash tests/cli_bad_inputs.sh "$build/evolve" >"$out/cli.log" 2>&1
cli_rc=$?
bash tests/resume_after_kill.sh "$build/evolve" "${EVOPLAST_DATA_DIR:-data}" >"$out/resume.log" 2>&1
resume_rc=$?
# A short train on each backend, side by side.
"$build/evolve" train --backend cuda --epochs 1 --train-limit 20000 --validation 2000 >"$out/train_cuda.log" 2>&1
"$build/evolve" train --backend cpu --epochs 1 --train-limit 20000 --validation 2000 --threads 16 >"$out/train_cpu.log" 2>&1

"$build/bench_population" -P 1,10,64,256,1024 --steps 20 >"$out/bench_backprop.log" 2>&1
"$build/bench_population" -P 1,10,64,256,1024 --steps 20 --rule hebb >"$out/bench_hebb.log" 2>&1
EVOPLAST_CONV=cudnn "$build/bench_population" -P 1,10,64,256,1024 --steps 20 >"$out/bench_cudnn.log" 2>&1
EVOPLAST_GEMM=tiled "$build/bench_population" -P 1,10,64,256,1024 --steps 20 >"$out/bench_tiled.log" 2>&1
"$build/bench_population" -P 1,10,64,256,1024 --steps 20 --precision tf32 >"$out/bench_tf32.log" 2>&1
"$build/bench_population" -P 1,10,64,256,1024 --steps 20 --precision tf32x3 >"$out/bench_tf32x3.log" 2>&1
"$build/bench_population" -P 1,10,64,256,1024 --steps 20 --precision tf32x3 --rule hebb >"$out/bench_hebb_tf32x3.log" 2>&1
"$build/bench_population" -P 1,10,64,256,1024 --steps 20 --precision bf16 >"$out/bench_bf16.log" 2>&1
# Every step launched kernel by kernel instead of as one CUDA graph (what the graph saves).
EVOPLAST_CUDA_GRAPHS=0 "$build/bench_population" -P 1,10,64 --steps 20 --precision tf32x3 >"$out/bench_tf32x3_nographs.log" 2>&1
# The fused steps composed instead (conv → ReLU → pool → dropout; a plastic conv's stacked rows; backprop's dense Adadelta).
EVOPLAST_FUSION=0 "$build/bench_population" -P 1,10,64 --steps 20 --precision tf32x3 >"$out/bench_tf32x3_unfused.log" 2>&1
EVOPLAST_FUSION=0 "$build/bench_population" -P 1,10,64 --steps 20 --precision tf32x3 --rule hebb >"$out/bench_hebb_tf32x3_unfused.log" 2>&1
# A population mixing feedback alignment in (as evolution makes): each net's W or B read where it lies, or picked into a copy.
"$build/bench_population" -P 1,10,64 --steps 20 --precision tf32x3 --rule hebb --mixed-fa >"$out/bench_hebb_fa_tf32x3.log" 2>&1
EVOPLAST_FUSION=0 "$build/bench_population" -P 1,10,64 --steps 20 --precision tf32x3 --rule hebb --mixed-fa >"$out/bench_hebb_fa_tf32x3_unfused.log" 2>&1
# Nets by backprop, FA, DFA and none in turn: errors routed as conv2 reads them, no dx for nets that discard it.
"$build/bench_population" -P 1,10,64 --steps 20 --precision tf32x3 --rule hebb --mixed-feedback >"$out/bench_hebb_mixed_tf32x3.log" 2>&1
EVOPLAST_FUSION=0 "$build/bench_population" -P 1,10,64 --steps 20 --precision tf32x3 --rule hebb --mixed-feedback >"$out/bench_hebb_mixed_tf32x3_unfused.log" 2>&1
"$build/bench_kernels" >"$out/bench_kernels.log" 2>&1
python3 bench/torch_reference.py --population 1,10,64,256,1024 --steps 20 >"$out/torch.log" 2>&1
python3 bench/torch_reference.py --population 1,10,64,256,1024 --steps 20 --tf32 >"$out/torch_tf32.log" 2>&1

# Nsight Compute over a few steps of the P = 64 CNN on tensor cores: the top three kernels by time.
# Optional (GPU_CHECK_NCU=1): minutes of device time.
ncu_rc="not run (GPU_CHECK_NCU=1 runs it)"
if [[ "${GPU_CHECK_NCU:-0}" == 1 ]] && ! command -v ncu >/dev/null; then ncu_rc="ncu not on the PATH"; fi
if [[ "${GPU_CHECK_NCU:-0}" == 1 ]] && command -v ncu >/dev/null; then
  timeout 240 ncu --launch-skip 300 --launch-count 60 --section SpeedOfLight \
    "$build/bench_population" -P 64 --steps 5 --precision tf32x3 --rule hebb >"$out/ncu.log" 2>&1
  ncu_rc="exit $?"
fi

if [[ "${GPU_CHECK_SEED:-0}" == 1 ]]; then
  start=$(date +%s.%N)
  "$build/evolve" run --preset seed --quiet --out "$out/seed-run" >"$out/seed_run.log" 2>&1
  seed_rc=$?
  seed_s=$(echo "$(date +%s.%N) - $start" | bc)
fi

echo
echo "=== summary (${card:-unknown}) ==="
cases() { grep -E '^\[doctest\] test cases' "$1" | tail -1; }
echo "test_cpu:          exit $cpu_rc — $(cases "$out/test_cpu.log")"
echo "test_cuda (cuBLAS): exit $cuda_rc — $(cases "$out/test_cuda.log")"
echo "test_cuda (tiled):  exit $tiled_rc — $(cases "$out/test_cuda_tiled.log")"
echo "test_cuda (cuDNN):  exit $cudnn_rc — $(cases "$out/test_cuda_cudnn.log")"
echo "test_cuda (tf32x3): exit $tf32x3_rc — $(cases "$out/test_cuda_tf32x3.log")"
echo "test_e2e: exit $e2e_rc; cli bad inputs: exit $cli_rc; resume after SIGKILL: exit $resume_rc"
echo "compute-sanitizer: $sanitize_rc"
echo "train 1 epoch (20k images), cuda: $(grep -E '^epoch|^test' "$out/train_cuda.log" | tr -s ' ' | cut -c1-150 | paste -sd'|')"
echo "train 1 epoch (20k images), cpu:  $(grep -E '^epoch|^test' "$out/train_cpu.log" | tr -s ' ' | cut -c1-150 | paste -sd'|')"
python3 - "$out" <<'PY'
import sys, re
d = sys.argv[1]
def table(path):
    rows = {}
    for line in open(path, errors="replace"):
        f = line.split()
        if len(f) >= 3 and f[0].isdigit() and f[1] != "does":  # "P does not fit: …" rows left out
            rows[int(f[0])] = float(f[-1])
    return rows
try:
    ours, hebb, torch = table(f"{d}/bench_backprop.log"), table(f"{d}/bench_hebb.log"), table(f"{d}/torch.log")
    dnn, tiled = table(f"{d}/bench_cudnn.log"), table(f"{d}/bench_tiled.log")
    tf32, tf32x3, torch_tf32 = table(f"{d}/bench_tf32.log"), table(f"{d}/bench_tf32x3.log"), table(f"{d}/torch_tf32.log")
    hebb_x3, no_graphs = table(f"{d}/bench_hebb_tf32x3.log"), table(f"{d}/bench_tf32x3_nographs.log")
    bf16 = table(f"{d}/bench_bf16.log")
    unfused, hebb_unfused = table(f"{d}/bench_tf32x3_unfused.log"), table(f"{d}/bench_hebb_tf32x3_unfused.log")
    hebb_fa, hebb_fa_unfused = table(f"{d}/bench_hebb_fa_tf32x3.log"), table(f"{d}/bench_hebb_fa_tf32x3_unfused.log")
    hebb_mixed = table(f"{d}/bench_hebb_mixed_tf32x3.log")
    hebb_mixed_unfused = table(f"{d}/bench_hebb_mixed_tf32x3_unfused.log")
except FileNotFoundError as e:
    print("missing log:", e); sys.exit(0)
print("network-images/s, seed CNN, batch 64 (ours: im2col conv + cuBLAS GEMM unless named)")
print(f"{'P':>5} {'backprop':>10} {'hebb':>10} {'cuDNN conv':>11} {'tiled GEMM':>11} {'PyTorch':>10} {'bp/PyTorch':>11} {'hebb/PyTorch':>13}")
for P in sorted(set(ours) | set(torch)):
    o, h, t = ours.get(P), hebb.get(P), torch.get(P)
    r = lambda a: f"{a / t:.2f}x" if a and t else "—"
    print(f"{P:>5} {o or 0:>10.0f} {h or 0:>10.0f} {dnn.get(P, 0):>11.0f} {tiled.get(P, 0):>11.0f} {t or 0:>10.0f} {r(o):>11} {r(h):>13}")
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
PY
echo; cat "$out/bench_kernels.log"
echo; echo "ncu (P = 64, hebb, tf32x3; $ncu_rc): top kernels by time"
python3 - "$out/ncu.log" <<'PY'
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
if [[ "${GPU_CHECK_SEED:-0}" == 1 ]]; then echo "seed preset end to end: exit $seed_rc, ${seed_s}s"; fi
