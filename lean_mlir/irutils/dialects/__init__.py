"""Python dialect modules the MLIR bindings look up by namespace (see irutils.context)."""
