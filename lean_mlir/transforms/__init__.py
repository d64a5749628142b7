"""Lean-to-lean and lean-to-linalg transforms: the derivative passes, lean-to-linalg, the verifier."""
