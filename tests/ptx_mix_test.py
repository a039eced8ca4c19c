#!/usr/bin/env python3
"""bench/ptx_mix.py's loop finder and counts on small PTX and SASS listings
written here: the loop with the FMAs is the one counted, kinds land in their
columns, and SASS branches by label and by absolute offset both close a loop
(cuobjdump prints one or the other). The GPU check runs --sass on a build;
these keep that path honest where no cuobjdump is."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import ptx_mix  # noqa: E402

FMAS = 64  # ptx_mix.kMinFma: fewer and a loop is no GEMM's


def sass_function(name, branch_target, label_line):
    """A SASS function with a short loop without FMAs (skipped) and a GEMM
    loop: FMAS FFMAs, 2 LDS, 1 LDG, 1 STS, BAR, 3 IMAD/IADD3, ISETP and BRA."""
    lines = [f"\tFunction : {name}", "\t.headerflags    @\"EF_CUDA_SM90\""]
    at = 0

    def put(text):
        nonlocal at
        lines.append(f"        /*{at:04x}*/                   {text} ;                /* 0x000fe20000000800 */")
        lines.append("                                                                 /* 0x000fe20000000800 */")
        at += 0x10

    put("S2R R0, SR_TID.X")
    lines.append(".L_x_0:")
    put("IADD3 R1, R1, 0x1, RZ")
    put("@P1 BRA `(.L_x_0)")
    loop_start = at
    if label_line:
        lines.append(".L_x_1:")
    put("LDG.E R2, desc[UR4][R4.64]")
    put("STS [R6], R2")
    put("BAR.SYNC.DEFER_BLOCKING 0x0")
    put("LDS.128 R8, [R7]")
    put("LDS.64 R12, [R7+0x100]")
    for i in range(FMAS):
        put(f"FFMA R{16 + i % 32}, R8, R12, R{16 + i % 32}")
    put("IMAD.WIDE R4, R3, 0x4, R4")
    put("IADD3 R3, R3, 0x10, RZ")
    put("UIADD3 UR4, UR4, 0x1, URZ")
    put("ISETP.GE.AND P0, PT, R3, R9, PT")
    put("@!P0 BRA " + (branch_target if branch_target else f"0x{loop_start:x}"))
    put("EXIT")
    put("NOP")
    return "\n".join(lines)


def check(condition, what):
    if not condition:
        sys.exit(f"ptx_mix_test: {what}")


def counts_of(ops):
    return {k: ops.count(k) for k in set(ops)}


def test_sass(text, how):
    found = list(ptx_mix.sass_listings(text))
    check(len(found) == 1, f"{how}: one function, got {len(found)}")
    ops = ptx_mix.main_loop(found[0][1], ptx_mix.sass_kind)
    check(ops is not None, f"{how}: the GEMM loop was not found")
    c = counts_of(ops)
    want = {"fma": FMAS, "ld.global": 1, "st.shared": 1, "barrier": 1, "ld.shared": 2, "integer": 3,
            "compare/branch": 2}
    check(c == want, f"{how}: counts {c}, expected {want}")


def test_ptx():
    body = "\n".join([".entry k(", ")", "{", "$L__BB0_1:", "\tadd.s32 %r1, %r1, 1;", "\t@%p1 bra $L__BB0_1;",
                      "$L__BB0_2:", "\tld.global.nc.f32 %f1, [%rd1];", "\tst.shared.f32 [%r2], %f1;",
                      "\tbar.sync 0;", "\tld.shared.v4.f32 {%f2, %f3, %f4, %f5}, [%r3];",
                      *["\tfma.rn.f32 %f6, %f2, %f3, %f6;"] * FMAS, "\tcvt.rna.tf32.f32 %r4, %f6;",
                      "\tmul.wide.s32 %rd2, %r4, 4;", "\tsetp.lt.s32 %p2, %r1, %r5;", "\t@%p2 bra.uni $L__BB0_2;",
                      "\tret;", "}"])
    ops = ptx_mix.main_loop(ptx_mix.ptx_listing(body), ptx_mix.kind)
    check(ops is not None, "ptx: the GEMM loop was not found")
    c = counts_of(ops)
    want = {"fma": FMAS, "ld.global": 1, "st.shared": 1, "barrier": 1, "ld.shared": 1, "cvt": 1, "integer": 1,
            "compare/branch": 2}
    check(c == want, f"ptx: counts {c}, expected {want}")


test_sass(sass_function("_Z4gemmPf", "`(.L_x_1)", True), "SASS, branch to a label")
test_sass(sass_function("_Z4gemmPf", None, False), "SASS, branch to an absolute offset")
test_ptx()
print("ptx_mix_test: PTX and SASS loops found and counted")
