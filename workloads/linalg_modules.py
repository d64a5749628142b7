"""Hand-written linalg-on-tensors modules (str.format templates) for the CPU back-end tests and the
call-overhead benchmark."""

from __future__ import annotations

# @mm: C = A @ B into a zero-filled init; m, k, n the sizes, t the element type (f32 / f64)
MATMUL = """
func.func @mm(%a: tensor<{m}x{k}x{t}>, %b: tensor<{k}x{n}x{t}>) -> tensor<{m}x{n}x{t}> {{
  %z = arith.constant 0.0 : {t}
  %e = tensor.empty() : tensor<{m}x{n}x{t}>
  %f = linalg.fill ins(%z : {t}) outs(%e : tensor<{m}x{n}x{t}>) -> tensor<{m}x{n}x{t}>
  %r = linalg.matmul ins(%a, %b : tensor<{m}x{k}x{t}>, tensor<{k}x{n}x{t}>)
                     outs(%f : tensor<{m}x{n}x{t}>) -> tensor<{m}x{n}x{t}>
  return %r : tensor<{m}x{n}x{t}>
}}
"""

# @f: one `math.{op}` over a 1-D tensor of n elements of type t
UNARY = """
#m = affine_map<(d0) -> (d0)>
func.func @f(%a: tensor<{n}x{t}>) -> tensor<{n}x{t}> {{
  %e = tensor.empty() : tensor<{n}x{t}>
  %r = linalg.generic {{indexing_maps = [#m, #m], iterator_types = ["parallel"]}}
      ins(%a : tensor<{n}x{t}>) outs(%e : tensor<{n}x{t}>) {{
  ^bb0(%x: {t}, %o: {t}):
    %y = math.{op} %x : {t}
    linalg.yield %y : {t}
  }} -> tensor<{n}x{t}>
  return %r : tensor<{n}x{t}>
}}
"""
