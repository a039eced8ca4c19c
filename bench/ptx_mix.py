#!/usr/bin/env python3
"""The static instruction mix of each GEMM-shaped kernel's main loop, from PTX or SASS.

Runs on a machine without a GPU (nvcc alone), so the loaders' cost can be
weighed where no profiler runs: for every kernel in the given .cu files whose
loops hold FMAs or mma.sync, the loop with the most of them (the sum over
k-slices) is taken and its PTX instructions are counted by kind. `rest/work`
is what the loop issues besides each FMA or mma.sync: with FFMA at one per
clock per lane and the rest sharing the issue slots, an fp32 loop issuing r
other instructions per FMA keeps the FMA pipe at most 1/(1 + r) busy. (An
m16n8k8 mma.sync is 32 multiply-adds a lane, so on tensor cores the same
ratio weighs far more.)

PTX is not what runs: ptxas still schedules, folds address arithmetic into
loads' immediate offsets and drops some moves, so take the PTX figures as an
upper bound on the overhead and compare them between versions of a kernel.
Where cuobjdump is (a GPU machine's toolkit), `--sass BINARY` counts the
machine code the build carries instead (FFMA, HMMA, LDG, LDS, IMAD, ISETP…,
in the same columns), what bench/gpu-check.sh does with bench_kernels.

Usage: python3 bench/ptx_mix.py [--arch compute_90] [--match REGEX] [FILE.cu ...]
       python3 bench/ptx_mix.py --sass BINARY [--match REGEX]
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


def opcode(line):
    """The opcode of one PTX line, or None where it holds no instruction (a
    label, directive, brace or comment)."""
    s = line.strip()
    if not s.endswith(";") or s.startswith((".", "//")) or LABEL.match(s):
        return None
    if s.startswith("@"):  # a predicate guard: @%p1 or @!%p1
        s = s.split(None, 1)[1] if " " in s else s
    return s.split()[0].rstrip(";")


class Listing:
    """One kernel's code as the loop finder reads it: ops (opcodes in order),
    labels (a label -> the index of the op after it) and branches (the index
    of each branch and the label it jumps to)."""

    def __init__(self):
        self.ops, self.labels, self.branches = [], {}, []


def ptx_listing(body):
    """A kernel's PTX body as a Listing."""
    listing = Listing()
    for line in body.split("\n"):
        m = LABEL.match(line.strip())
        if m:
            listing.labels[m.group(1)] = len(listing.ops)
            continue
        op = opcode(line)
        if op is None:
            continue
        m = BRANCH.search(line)
        if m:
            listing.branches.append((len(listing.ops), m.group(1)))
        listing.ops.append(op)
    return listing


def main_loop(listing, kind_of):
    """The ops of the GEMM loop (from a label to a branch back to it) holding
    the most FMAs and mma's, or None."""
    best = None
    for at, target in listing.branches:
        start = listing.labels.get(target)
        if start is None or start > at:
            continue
        ops = [kind_of(op) for op in listing.ops[start:at + 1]]
        fma, mma = ops.count("fma"), ops.count("mma")
        if fma < kMinFma and mma < kMinMma:
            continue
        if best is None or (fma + mma, len(ops)) > best[0]:
            best = ((fma + mma, len(ops)), ops)
    return best[1] if best else None


# SASS (cuobjdump -sass): "/*0470*/  @!P0 BRA `(.L_x_3) ;" or "BRA 0x470", labels ".L_x_3:".
SASS_FUNCTION = re.compile(r"^\s*Function : (\S+)", re.M)
SASS_INSTRUCTION = re.compile(r"^[^/]*/\*([0-9a-fA-F]+)\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)([^;]*);")
SASS_LABEL = re.compile(r"^\s*(\.L\w+):")
SASS_TARGET = re.compile(r"`\((\.L\w+)\)|\b0x([0-9a-fA-F]+)\b")
SASS_KINDS = {
    "fma": {"FFMA"},
    "mma": {"HMMA"},
    "ld.global": {"LDG", "LDC", "LD"},
    "ld.shared": {"LDS", "LDSM"},
    "st.shared": {"STS"},
    "st.global": {"STG", "ST", "RED", "ATOM", "ATOMG"},
    "cp.async": {"LDGSTS", "LDGDEPBAR", "DEPBAR"},
    "barrier": {"BAR"},
    "cvt": {"F2F", "F2FP", "I2F", "F2I", "I2I", "FRND"},
    "integer": {"IMAD", "IADD3", "IADD", "LEA", "SHF", "SHL", "SHR", "LOP3", "LOP", "IABS", "IMNMX", "SGXT", "BMSK",
                "POPC", "FLO", "BREV", "PRMT", "IMUL", "ISCADD"},
    "compare/branch": {"ISETP", "FSETP", "PSETP", "SEL", "FSEL", "PLOP3", "BRA", "BRX", "BSSY", "BSYNC", "EXIT", "RET",
                       "CALL", "WARPSYNC", "YIELD"},
    "mov": {"MOV", "S2R", "S2UR", "CS2R", "R2UR"},
}


def sass_kind(opcode):
    """The kind of one SASS instruction by its base opcode (no modifiers);
    a uniform-datapath op (UIADD3, ULDC…) counts as its vector twin."""
    for name, ops in SASS_KINDS.items():
        if opcode in ops or (opcode.startswith("U") and opcode[1:] in ops):
            return name
    return "other"


def sass_listings(text):
    """(mangled name, Listing) for each function of a cuobjdump -sass listing;
    NOPs (padding) left out."""
    functions = list(SASS_FUNCTION.finditer(text))
    for i, f in enumerate(functions):
        body = text[f.end():functions[i + 1].start() if i + 1 < len(functions) else len(text)]
        listing, at_offset, pending = Listing(), {}, []
        for line in body.split("\n"):
            m = SASS_LABEL.match(line)
            if m:
                listing.labels[m.group(1)] = len(listing.ops)
                continue
            m = SASS_INSTRUCTION.match(line)
            if not m or m.group(2) == "NOP":
                continue
            at_offset[int(m.group(1), 16)] = len(listing.ops)
            if m.group(2) == "BRA":
                t = SASS_TARGET.search(m.group(3))
                if t and t.group(1):
                    listing.branches.append((len(listing.ops), t.group(1)))
                elif t:
                    pending.append((len(listing.ops), int(t.group(2), 16)))
            listing.ops.append(m.group(2))
        for at, offset in pending:  # absolute targets: the instruction at that offset
            if offset in at_offset:
                listing.labels[f"0x{offset:x}"] = at_offset[offset]
                listing.branches.append((at, f"0x{offset:x}"))
        yield f.group(1), listing


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
    # --fmad=false as the build compiles them (CMakeLists.txt): the FMAs counted are the kernels' own fmaf's.
    cmd = [nvcc, "-O3", f"-arch={arch}", "-ptx", "--fmad=false", "-std=c++17", "-DEVOPLAST_HAVE_CUDA=1", "-DFMT_SHARED",
           f"-I{ROOT}", source, "-o", out]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ptx_mix: nvcc could not compile {source} to PTX:\n{done.stderr.strip()}")
    with open(out) as f:
        return f.read()


COLUMNS = ["fma", "mma", "ld.global", "ld.shared", "st.shared", "st.global", "cp.async", "barrier", "cvt", "integer",
           "compare/branch", "mov", "other"]


def print_row(ops, name):
    counts = dict.fromkeys(COLUMNS, 0)
    for k in ops:
        counts[k] += 1
    total = sum(counts.values())
    work = counts["fma"] + counts["mma"]
    print(" ".join(f"{v:>9}" for v in [total, *counts.values()]) + f" {(total - work) / work:>9.2f}  {name}")


def find_tool(name):
    path = shutil.which(name)
    if path is None and os.access(f"/usr/local/cuda/bin/{name}", os.X_OK):
        path = f"/usr/local/cuda/bin/{name}"
    return path


def print_kernel(name, listing, kind_of, match):
    """One row for a kernel whose name matches and whose code holds a GEMM loop."""
    if match and not re.search(match, name):
        return
    ops = main_loop(listing, kind_of)
    if ops is not None:
        print_row(ops, name)


def sass_text(args):
    """The cuobjdump -sass listing --sass-listing names, or that of the binary --sass names."""
    if args.sass_listing:
        try:
            with open(args.sass_listing) as f:
                return f.read()
        except OSError as e:
            sys.exit(f"ptx_mix: {args.sass_listing}: {e.strerror} (give a saved cuobjdump -sass listing)")
    cuobjdump = find_tool("cuobjdump")
    if cuobjdump is None:
        sys.exit("ptx_mix: cuobjdump not found: --sass needs the CUDA toolkit's binary utilities")
    done = subprocess.run([cuobjdump, "-sass", args.sass], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ptx_mix: cuobjdump -sass {args.sass} failed: {done.stderr.strip()}")
    return done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="CUDA sources (default: the kernels with tile loops)")
    parser.add_argument("--arch", default="compute_90", help="virtual architecture for nvcc -arch")
    parser.add_argument("--match", default="", help="only kernels whose name matches this regular expression")
    parser.add_argument("--sass", metavar="BINARY", help="count the SASS a built binary carries (cuobjdump -sass)")
    parser.add_argument("--sass-listing", metavar="FILE", help="count the SASS of a saved cuobjdump -sass listing")
    args = parser.parse_args()
    header = " ".join(f"{h:>9}" for h in ["instr", *COLUMNS, "rest/work"]) + "  kernel"
    if args.sass or args.sass_listing:
        text = sass_text(args)
        print(f"ptx_mix: SASS of each kernel's busiest loop, one iteration ({args.sass or args.sass_listing})")
        print(header)
        seen = set()  # a binary may carry a kernel more than once (one per architecture)
        for mangled, listing in sass_listings(text):
            if mangled not in seen:
                seen.add(mangled)
                print_kernel(short_name(mangled), listing, sass_kind, args.match)
        return
    nvcc = find_tool("nvcc")
    if nvcc is None:
        sys.exit("ptx_mix: nvcc not found: install the CUDA toolkit or put nvcc on PATH")
    files = args.files or [os.path.join(ROOT, f) for f in DEFAULT_FILES]
    for f in files:
        if not os.path.isfile(f):
            sys.exit(f"ptx_mix: {f}: no such file (give CUDA sources, e.g. kernels/conv_cuda.cu)")
    print(f"ptx_mix: static PTX ({args.arch}, nvcc -O3 --fmad=false) of each kernel's busiest loop, one iteration")
    print(header)
    with tempfile.TemporaryDirectory() as workdir:
        for source in files:
            ptx = ptx_of(nvcc, source, args.arch, workdir)
            entries = list(ENTRY.finditer(ptx))
            for i, e in enumerate(entries):
                body = ptx[e.start():entries[i + 1].start() if i + 1 < len(entries) else len(ptx)]
                print_kernel(short_name(e.group(1)), ptx_listing(body), kind, args.match)


if __name__ == "__main__":
    main()
