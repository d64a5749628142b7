"""Compile time against graph size: a chain of N `sin(x) * 1.01` steps on f32[16], compiled with
its JVP, VJP and HVP (`compile_scalar`, first call included), one fresh process per N.

Run: python benchmarks/compile_scaling.py [--sizes 100 200 400 800]
Prints the CPU model, seconds per N (wall and CPU: on a shared machine CPU time is the steadier),
milliseconds per traced op, and the time in the stages of the compile: derivation, lean-to-linalg,
fusion (with its upstream passes; "ours": the rewrites of fusion.py alone), all upstream pass runs,
and the first call (LLVM's code generation)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import cProfile, json, pstats, sys, time
import numpy as np
import lean_mlir as lm
n = int(sys.argv[1])
def f(x):
    for _ in range(n):
        x = lm.sin(x) * 1.01
    return lm.sum(x)
prof = cProfile.Profile()
t, cpu = time.perf_counter(), time.process_time()
prof.enable()
c = lm.compile_scalar(f, lm.f32[16])
t_call = time.perf_counter()
c.forward(np.zeros(16, np.float32))
prof.disable()
total, cpu, llvm = time.perf_counter() - t, time.process_time() - cpu, time.perf_counter() - t_call
stats = pstats.Stats(prof).stats
def cum(name):
    return sum(v[3] for k, v in stats.items() if k[2] == name)
print(json.dumps({"n": n, "total": total, "cpu": cpu, "derive": cum("_derive"),
                  "to_linalg": cum("lower_lean_to_linalg"), "fusion": cum("fuse"),
                  "ours": cum("_fuse_into_first_users") + cum("_merge_reductions"),
                  "mlir_passes": cum("run_passes"), "llvm": llvm}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 200, 400, 800])
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from lean_mlir.backends.cpu.target import host
    print(f"CPU: {host().model}")
    cols = ("derive", "to_linalg", "fusion", "ours", "mlir_passes", "llvm")
    print(f"{'N':>6} {'total s':>9} {'ms/op':>7} {'cpu s':>7} {'ms/op':>7}" + "".join(f"{c:>12}" for c in cols))
    for n in args.sizes:
        r = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, timeout=3600)
        if r.returncode:
            print(f"{n:>6} failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        ops = 2 * n + 1  # lean ops traced: sin, mul per step, and the sum
        print(f"{n:>6} {d['total']:9.2f} {1e3 * d['total'] / ops:7.2f} {d['cpu']:7.2f} {1e3 * d['cpu'] / ops:7.2f}"
              + "".join(f"{d[c]:12.2f}" for c in cols))


if __name__ == "__main__":
    main()
