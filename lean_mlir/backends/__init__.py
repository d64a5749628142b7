"""Back ends behind one interface (`base.Backend`): cpu (LLVM JIT), gpu (CUDA), eager (NumPy
interpreter of the lean dialect)."""

from __future__ import annotations

from .base import Backend

NAMES = ("cpu", "gpu", "eager")


def get_backend(name: str) -> Backend:
    """The back end called `name` (its package is imported on first use)."""
    if name == "cpu":
        from .cpu import BACKEND
    elif name == "gpu":
        from .gpu import BACKEND
    elif name == "eager":
        from .eager import BACKEND
    else:
        raise ValueError(f"backend must be one of {NAMES}, got {name!r}")
    return BACKEND
