"""The `lean` dialect has no generated Python op classes (it is IRDL); this module exists so that the
bindings find *a* module for the namespace once, instead of failing to import `mlir.dialects.lean`
at every access of a lean op (74k failed imports while deriving a 1,000-op function)."""
