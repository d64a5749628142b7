"""The one place that makes an MLIR Context with the upstream dialects and the `lean` dialect loaded."""

from __future__ import annotations

from functools import cache

from mlir import ir
from mlir.dialects import irdl
from mlir.dialects._ods_common import _cext

from .paths import dialect_file

# Where the bindings look for the `lean` namespace's Python module (found once, then cached).
_cext.globals.append_dialect_search_prefix(__name__.rsplit(".", 1)[0] + ".dialects")


@cache
def dialect_source() -> str:
    return dialect_file().read_text()


def make_context() -> ir.Context:
    """A fresh Context where `lean.*` ops parse and verify (IRDL is loaded per Context)."""
    ctx = ir.Context()
    with ctx, ir.Location.unknown():
        irdl.load_dialects(ir.Module.parse(dialect_source()))
    return ctx


def lean_op_names() -> list[str]:
    """Names of the ops the IRDL file defines, e.g. ['neg', 'square', ...]."""
    with make_context(), ir.Location.unknown():
        mod = ir.Module.parse(dialect_source())
        dialect = mod.body.operations[0]
        return [ir.StringAttr(op.attributes["sym_name"]).value for op in dialect.regions[0].blocks[0].operations]
