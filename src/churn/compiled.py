"""The compiled (numba) kernels: one compiled version of each, and compiling them all ahead of use.

numba compiles a kernel once per *type* of its arguments, and an array's type includes its dtype, its
layout and whether it is writable. Arrow hands out read-only arrays without a copy while computed ones are
writable, so the same kernel was compiled, cached and loaded twice over. Every kernel input therefore goes
through `kernel_input`: read-only, C-contiguous, one dtype. A kernel's outputs are the arrays it fills,
allocated writable by its caller.

`compile_all` compiles (or loads from numba's cache) every kernel on tiny inputs through the same code paths
real data takes. Run it where the cache should be filled before real work: a container image's build
(`python -m churn.compiled`, with `NUMBA_CACHE_DIR` pointing at a folder the image keeps), or a test run
before its workers start.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np

# Modules whose `warm_up()` compiles their kernels through their real entry points, the slowest to compile
# first (so every other one makes two halves of about the same cost).
KERNEL_MODULES = ("churn.features.profile_kernel", "churn.features.purchases_kernel", "churn.features.btyd",
                  "churn.features.engagement_kernel", "churn.training.explain", "churn.features.support_kernel",
                  "churn.features.lookup", "churn.features.feedback_kernel", "churn.scoring.reasons")


def kernel_input(a: np.ndarray, dtype: type | np.dtype) -> np.ndarray:
    """`a` as a read-only, C-contiguous array of `dtype`, for a kernel to read, so every call matches the one
    compiled version: a view of `a` when it has that dtype and layout already, else a converted copy (int32
    Arrow offsets, a sliced or column-major matrix)."""
    view = np.ascontiguousarray(a, dtype=dtype).view()
    view.flags.writeable = False
    return view


def compile_all(modules: tuple[str, ...] = KERNEL_MODULES) -> list[str]:
    """Compile (or load from numba's cache) the kernels of `modules` (default: all); returns them."""
    for name in modules:
        importlib.import_module(name).warm_up()
    return list(modules)


if __name__ == "__main__":  # python -m churn.compiled [module ...]
    print("\n".join(compile_all(tuple(sys.argv[1:]) or KERNEL_MODULES)))
