"""Compile every Triton kernel of relukit.kernels.gpu for a CUDA GPU (sm_90), without a GPU.

Triton's interpreter accepts some programs its compiler refuses, so the tests also compile
each kernel ahead of time, in every dtype and constexpr combination relukit launches, down to
a cubin (Triton's bundled ptxas), with the launch options relukit uses and the 16-byte
alignment and divisibility a runtime launch would see. Run as a script, in a process where
Triton is not in interpreter mode; prints one line per kernel, and the PTX's global memory
instructions for the relu forward so a reader can see the loads are 128-bit.
"""

from __future__ import annotations

import os
import re
import sys


def build(kernel, signature, constants):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from relukit.kernels.gpu import launch

    names = kernel.arg_names
    full = {name: signature.get(name, "constexpr") for name in names}
    constexprs = {(names.index(k),): v for k, v in constants.items()}
    aligned = {(names.index(k),): [["tt.divisibility", 16]] for k in signature}
    source = ASTSource(fn=kernel, signature=full, constexprs=constexprs, attrs=aligned)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=dict(launch.EXACT))


def main() -> None:
    """Compile them all (importing Triton here: the test suite imports this file too)."""
    os.environ["TRITON_INTERPRET"] = "0"
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "0")
    import triton.language as tl

    from relukit.kernels.gpu import output, piecewise, prelu, steps

    dtypes = {"fp32": tl.float32, "bf16": tl.float32, "fp16": tl.float32, "fp64": tl.float64}
    count = 0
    for dt, wide in dtypes.items():
        t = f"*{dt}"
        forward = {"x_ptr": t, "y_ptr": t, "mask_ptr": "*u8", "params_ptr": "*fp64"}
        forward |= {"n": "i32", "nbytes": "i32"}
        for formula, bits in [(0, 1), (1, 1), (2, 1), (3, 1), (3, 2)]:
            for zero_slope in (False, True):
                flags = {"CODE_BELOW": 0, "CODE_IDENTITY": 1, "CODE_CAPPED": 2, "CAPPED": bits == 2}
                flags |= {"ZERO_SLOPE": zero_slope, "WIDE": wide, "ROWS": piecewise.ROWS}
                k = build(piecewise._forward, forward, {"FORMULA": formula, "BITS": bits} | flags)
                count += 1
                if dt == "fp32" and formula == 0 and not zero_slope:
                    ptx = k.asm["ptx"]
        backward = {"g_ptr": t, "mask_ptr": "*u8", "dx_ptr": t, "scales_ptr": "*fp64"}
        backward |= {"n": "i32", "nbytes": "i32"}
        for bits, kinds in [(1, (0, 1, 0, 0)), (1, (2, 1, 0, 0)), (2, (2, 1, 0, 1))]:
            k0, k1, k2, k3 = kinds
            codes = {"K0": k0, "K1": k1, "K2": k2, "K3": k3}
            build(piecewise._backward, backward, {"BITS": bits, "WIDE": wide, "ROWS": 256} | codes)
            count += 1
        rows = {"WIDE": wide, "ROWS": prelu.ROWS}
        sizes = {"n": "i32", "inner": "i32", "channels": "i32"}
        build(
            prelu._prelu_forward,
            {"x_ptr": t, "w_ptr": t, "y_ptr": t, "mask_ptr": "*u8", "counts_ptr": "*i64"} | sizes,
            {"COUNT": True} | rows,
        )
        build(prelu._compact, {"x_ptr": t, "out_ptr": t, "starts_ptr": "*i64", "n": "i32"}, rows)
        saved = {"g_ptr": t, "mask_ptr": "*u8", "saved_ptr": t, "starts_ptr": "*i64", "w_ptr": t}
        saved |= {"dx_ptr": t, "dw_ptr": t} | sizes
        for is_prelu, weight_grad in [(True, True), (True, False), (False, False)]:
            flags = {"PRELU": is_prelu, "WEIGHT_GRAD": weight_grad} | rows
            build(prelu._from_saved, saved, flags)
        count += 5
        for bits in (1, 2, 3, 4):
            flags = {"BITS": bits, "WIDE": wide, "ROWS": steps.ROWS}
            encode = {"x_ptr": t, "borders_ptr": "*fp64", "codes_ptr": "*u8"}
            encode |= {"n": "i32", "nbytes": "i32"}
            build(steps._encode, encode, {"BORDERS": (1 << bits) - 1} | flags)
            backward = {"g_ptr": t, "codes_ptr": "*u8", "levels_ptr": "*fp64", "dx_ptr": t}
            backward |= {"n": "i32", "nbytes": "i32"}
            build(steps._backward, backward, flags)
            count += 2
        inverse = {"y_ptr": t, "bits_ptr": "*u8", "g_ptr": t, "table_ptr": f"*{dt}"}
        inverse |= {"scalars_ptr": "*fp64", "dx_ptr": t, "n": "i32"}
        inverse["table_ptr"] = "*fp64" if dt == "fp64" else "*fp32"
        flags = {"RIGHT": 120, "LEFT": 300, "DEGREE": 7 if dt == "fp64" else 3}
        build(output._from_output, inverse, flags | {"WIDE": wide, "ROWS": output.ROWS})
        count += 1
        print(f"{dt}: compiled", flush=True)
    build(prelu._count_zeros, {"mask_ptr": "*u8", "counts_ptr": "*i64", "n": "i32"}, {"ROWS": 256})
    memory = sorted(set(re.findall(r"(?:ld|st)\.global[.\w]*", ptx)))
    print(f"{count + 1} kernels compiled for sm_90; relu forward (float32): {', '.join(memory)}")


if __name__ == "__main__":
    sys.exit(main())
