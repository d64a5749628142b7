"""Derivative passes: generic walkers over the rule table."""

from .common import cleanup
from .jvp import derive_jvp, jvp_pass
from .vjp import derive_vjp, vjp_pass

__all__ = ["cleanup", "derive_jvp", "derive_vjp", "jvp_pass", "vjp_pass"]
