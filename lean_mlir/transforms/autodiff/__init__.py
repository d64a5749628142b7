"""Derivative passes: generic walkers over the rule table."""

from .common import cleanup
from .jvp import derive_jvp
from .vjp import derive_vjp

__all__ = ["cleanup", "derive_jvp", "derive_vjp"]
