#!/usr/bin/env python3
"""The static instruction mix of each GEMM-shaped kernel's main loop, from PTX.

Runs on a machine without a GPU (nvcc alone), so the loaders' cost can be
weighed where no profiler runs: for every kernel in the given .cu files whose
loops hold FMAs or mma.sync, the loop with the most of them (the sum over
k-slices) is taken and its PTX instructions are counted by kind. `rest/work`
is what the loop issues besides each FMA or mma.sync: with FFMA at one per
clock per lane and the rest sharing the issue slots, an fp32 loop issuing r
other instructions per FMA keeps the FMA pipe at most 1/(1 + r) busy. (An
m16n8k8 mma.sync is 32 multiply-adds a lane, so on tensor cores the same
ratio weighs far more.)

It is a static count of PTX, not SASS: ptxas still schedules, folds address
arithmetic into loads' immediate offsets and drops some moves, so take the
figures as an upper bound on the overhead and compare them between versions
of a kernel; on a GPU machine, `cuobjdump -sass` of the build and Nsight
Compute's instruction mix say what runs.

Usage: python3 bench/ptx_mix.py [--arch compute_90] [--match REGEX] [FILE.cu ...]
(default files: the kernels with tile loops). Prints one row per kernel.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILES = ["kernels/conv_cuda.cu", "kernels/gemm_cuda.cu", "kernels/dense_cuda.cu",
                 "kernels/plasticity_cuda.cu"]

# A loop with fewer is no GEMM's main loop (an elementwise kernel's FMA or two).
kMinFma, kMinMma = 64, 4
LABEL = re.compile(r"^(\$L__\w+):")
BRANCH = re.compile(r"\bbra(?:\.uni)?\s+(\$L__\w+);")
ENTRY = re.compile(r"^(?:\.visible\s+)?\.entry\s+(\w+)\(", re.M)
INT_ARITH = ("add.", "sub.", "mul.", "mad.", "shl.", "shr.", "and.", "or.", "xor.", "div.", "rem.", "min.",
             "max.", "neg.", "not.", "abs.", "cvta.", "bfe.", "bfi.", "prmt.")
INT_TYPES = (".s32", ".u32", ".s64", ".u64", ".b32", ".b64", ".s16", ".u16", ".pred")


def kind(opcode):
    """The kind of one PTX instruction, by its opcode (e.g. 'ld.global.nc.f32')."""
    if opcode.startswith("fma.") and ".f32" in opcode:
        return "fma"
    if opcode.startswith("mma."):
        return "mma"
    if opcode.startswith(("ld.global", "ld.param")):
        return "ld.global"
    if opcode.startswith(("ld.shared", "ldmatrix")):
        return "ld.shared"
    if opcode.startswith("st.shared"):
        return "st.shared"
    if opcode.startswith(("st.global", "red.", "atom.")):
        return "st.global"
    if opcode.startswith("cp.async"):
        return "cp.async"
    if opcode.startswith(("bar.", "barrier.")):
        return "barrier"
    if opcode.startswith("cvt."):
        return "cvt"
    if opcode.startswith(("setp.", "selp.", "bra", "ret", "exit")):
        return "compare/branch"
    if opcode.startswith("mov."):
        return "mov"
    if opcode.startswith(INT_ARITH) and opcode.endswith(INT_TYPES) or opcode.startswith(("mul.wide", "cvta.")):
        return "integer"
    return "other"


def instructions(lines):
    """The opcodes among PTX lines (labels, directives, braces and comments left out)."""
    for line in lines:
        s = line.strip()
        if not s.endswith(";") or s.startswith((".", "//")) or LABEL.match(s):
            continue
        if s.startswith("@"):  # a predicate guard: @%p1 or @!%p1
            s = s.split(None, 1)[1] if " " in s else s
        yield s.split()[0].rstrip(";")


def main_loop(body):
    """The lines of the GEMM loop (label to backward branch) holding the most FMAs and mma's, or None."""
    lines = body.split("\n")
    labels = {}
    best = None
    for n, line in enumerate(lines):
        m = LABEL.match(line)
        if m:
            labels[m.group(1)] = n
            continue
        m = BRANCH.search(line)
        if m and labels.get(m.group(1), n) < n:
            loop = lines[labels[m.group(1)]:n + 1]
            ops = [kind(op) for op in instructions(loop)]
            work = (ops.count("fma") >= kMinFma or ops.count("mma") >= kMinMma) and ops.count("fma") + ops.count("mma")
            if work and (best is None or (work, len(loop)) > best[0]):
                best = ((work, len(loop)), loop)
    return best[1] if best else None


def short_name(mangled):
    """The demangled kernel name without its namespaces and parameter list."""
    try:
        name = subprocess.run(["c++filt", mangled], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return mangled
    name = re.sub(r"evoplast::kernels::cuda::(?:\(anonymous namespace\)::)?", "", name)
    name = name.replace("evoplast::kernels::", "").replace("(anonymous namespace)::", "")
    depth = 0
    for i, c in enumerate(name):  # drop the parameter list: the first '(' outside template brackets
        depth += c == "<"
        depth -= c == ">"
        if c == "(" and depth == 0:
            return name[:i]
    return name


def ptx_of(nvcc, source, arch, workdir):
    out = os.path.join(workdir, os.path.basename(source) + ".ptx")
    cmd = [nvcc, "-O3", f"-arch={arch}", "-ptx", "-std=c++17", "-DEVOPLAST_HAVE_CUDA=1", "-DFMT_SHARED",
           f"-I{ROOT}", source, "-o", out]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ptx_mix: nvcc could not compile {source} to PTX:\n{done.stderr.strip()}")
    with open(out) as f:
        return f.read()


COLUMNS = ["fma", "mma", "ld.global", "ld.shared", "st.shared", "st.global", "cp.async", "barrier", "cvt", "integer",
           "compare/branch", "mov", "other"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="CUDA sources (default: the kernels with tile loops)")
    parser.add_argument("--arch", default="compute_90", help="virtual architecture for nvcc -arch")
    parser.add_argument("--match", default="", help="only kernels whose name matches this regular expression")
    args = parser.parse_args()
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.access("/usr/local/cuda/bin/nvcc", os.X_OK)
                                    else None)
    if nvcc is None:
        sys.exit("ptx_mix: nvcc not found: install the CUDA toolkit or put nvcc on PATH")
    files = args.files or [os.path.join(ROOT, f) for f in DEFAULT_FILES]
    for f in files:
        if not os.path.isfile(f):
            sys.exit(f"ptx_mix: {f}: no such file (give CUDA sources, e.g. kernels/conv_cuda.cu)")
    header = ["instr", *COLUMNS, "rest/work"]
    print(f"ptx_mix: static PTX ({args.arch}, nvcc -O3) of each kernel's busiest loop, one iteration")
    print(" ".join(f"{h:>9}" for h in header) + "  kernel")
    with tempfile.TemporaryDirectory() as workdir:
        for source in files:
            ptx = ptx_of(nvcc, source, args.arch, workdir)
            entries = list(ENTRY.finditer(ptx))
            for i, e in enumerate(entries):
                name = short_name(e.group(1))
                if args.match and not re.search(args.match, name):
                    continue
                body = ptx[e.start():entries[i + 1].start() if i + 1 < len(entries) else len(ptx)]
                loop = main_loop(body)
                if loop is None:
                    continue
                counts = dict.fromkeys(COLUMNS, 0)
                for op in instructions(loop):
                    counts[kind(op)] += 1
                total = sum(counts.values())
                work = counts["fma"] + counts["mma"]
                row = [total, *counts.values()]
                ratio = (total - work) / work
                print(" ".join(f"{v:>9}" for v in row) + f" {ratio:>9.2f}  {name}")


if __name__ == "__main__":
    main()
