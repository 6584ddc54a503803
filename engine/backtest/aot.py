"""Build the ahead-of-time compiled backtest kernel and indicator helpers: `python -m engine.backtest.aot` (`make`).

numba.pycc compiles kernel.simulate_kernel, kernel.bare_loop, curve.curve_stats and prepare.side_targets, with the
signatures the engine calls them with (C-contiguous float64 arrays, a bool change-flag array, int8 sides, float64 /
int64 / bool scalars), into the extension `engine/backtest/_kernel_aot<EXT_SUFFIX>` for this machine's CPU
(`target_cpu = "host"`), plus
`source_hash()`, the hash of the sources it was built from, which engine.backtest.kernels compares with the sources
on disk before using it. The extension is built in a temporary directory beside it, checked by importing it in a
fresh interpreter, and moved into place atomically; on failure the previous file (if any) is left as it was.
The same steps build the strategy authors' indicator helpers (engine/features/fast_kernels.py, listed by
engine.features.fast.aot_exports) into `engine/features/_fast_aot<EXT_SUFFIX>` (`--only kernel|fast`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
NAME = "_kernel_aot"


FAST_DIR = HERE.parent / "features"
FAST_NAME = "_fast_aot"


def output_path() -> Path:
    """Where the extension for this interpreter lives (engine/backtest/_kernel_aot + the ABI's EXT_SUFFIX)."""
    return HERE / (NAME + str(sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def fast_output_path() -> Path:
    """Where the indicator helpers' extension lives (engine/features/_fast_aot + the ABI's EXT_SUFFIX)."""
    return FAST_DIR / (FAST_NAME + str(sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def signatures() -> dict[str, Any]:
    """The exported names and their numba signatures (C-contiguous float64 arrays, as the engine passes them)."""
    from numba import types

    f8, i8, b1 = types.float64, types.int64, types.boolean
    c1, c2 = types.float64[::1], types.float64[:, ::1]
    return {
        "simulate_kernel": types.Tuple((c1, c2, c2, i8))(c2, types.boolean[::1], *[c2] * 10, *[f8] * 7, i8, b1, i8),
        "curve_stats": types.Tuple((f8, f8, f8, f8, f8, f8, i8))(c1),
        "bare_loop": c1(c1, c1, c1, f8, f8),
        "side_targets": types.Tuple((i8, i8))(types.int8[:, ::1], f8, c2, c2, types.boolean[::1]),
    }


def _constant(value: int) -> Callable[[], int]:
    def source_hash() -> int:
        return value  # a frozen closure variable: a compile-time constant in the extension

    return source_hash


def compile_extension(out_dir: Path, verbose: bool = False, target: str = "kernel") -> Path:
    """Compile the extension (`kernel` or `fast`) into out_dir (pycc's temporary files go there too); return its path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc's pending-deprecation notice
        from numba import types
        from numba.pycc import CC

        if target == "fast":
            from engine.features import fast

            cc = CC(FAST_NAME)
            cc.output_file = fast_output_path().name
            for name, (fn, sig) in fast.aot_exports().items():
                cc.export(name, sig)(fn.py_func)
            digest = fast.source_hash()
        else:
            from engine.backtest import curve, kernel, prepare
            from engine.backtest.kernels import source_hash

            cc = CC(NAME)
            cc.output_file = output_path().name
            sigs = signatures()
            cc.export("simulate_kernel", sigs["simulate_kernel"])(kernel.simulate_kernel.py_func)
            cc.export("bare_loop", sigs["bare_loop"])(kernel.bare_loop.py_func)
            cc.export("curve_stats", sigs["curve_stats"])(curve.curve_stats.py_func)
            cc.export("side_targets", sigs["side_targets"])(prepare.side_targets.py_func)
            digest = source_hash()
        cc.output_dir = str(out_dir)
        cc.target_cpu = "host"
        cc.verbose = verbose
        cc.export("source_hash", types.int64())(_constant(digest))
        old_tmp = tempfile.tempdir
        tempfile.tempdir = str(out_dir)  # pycc's build directory: inside out_dir, removed with it
        try:
            cc.compile()
        finally:
            tempfile.tempdir = old_tmp
    return out_dir / cc.output_file


_CHECK = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("engine.backtest._kernel_aot", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
from engine.backtest.kernels import source_hash
assert mod.source_hash() == source_hash(), "hash"
assert mod.curve_stats(np.array([1.0, 2.0, 1.0]))[5] == -0.5, "curve_stats"
assert "numba" not in sys.modules, "the extension imported numba"
"""

_CHECK_FAST = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("engine.features._fast_aot", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
from engine.features.fast import source_hash
assert mod.source_hash() == source_hash(), "hash"
out = np.zeros(3)
mod.rolling_lane(np.array([1.0, 2.0, 4.0]), 2, 2, True, out, 0, 3, (0, 0, 0, 0.0, 0.0, 0.0, 1.0))
assert out[2] == 3.0, "rolling_lane"
assert "numba" not in sys.modules, "the extension imported numba"
"""


def build(verbose: bool = False, which: str = "kernel") -> Path:
    """Compile, check in a fresh interpreter, then atomically install one extension (`kernel` or `fast`)."""
    target = fast_output_path() if which == "fast" else output_path()
    work = Path(tempfile.mkdtemp(prefix=".aot-build-", dir=target.parent))
    try:
        built = compile_extension(work, verbose, which)
        root = HERE.parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        check = _CHECK_FAST if which == "fast" else _CHECK
        subprocess.run([sys.executable, "-c", check, str(built)], check=True, cwd=root, env=env)
        os.replace(built, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line: build the extensions; exit status 1 (with the reason on stderr) when one cannot be built."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--only", choices=("kernel", "fast"), help="build one extension (default: both)")
    args = ap.parse_args(argv)
    status = 0
    for which in ([args.only] if args.only else ["kernel", "fast"]):
        t0 = time.perf_counter()
        try:
            path = build(args.verbose, which)
        except Exception as exc:  # noqa: BLE001 - reported; the engine falls back to numba's JIT
            print(f"engine.backtest.aot: {which} build failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            status = 1
            continue
        print(f"engine.backtest.aot: built {path.relative_to(HERE.parents[1])} in {time.perf_counter() - t0:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
