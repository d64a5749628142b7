# Front-end conveniences normalize to the dialect's canonical attributes.
# RUN: %python %s | FileCheck %s
# ruff: noqa: E501 - FileCheck lines
import lean_mlir as lm


# Negative axes are normalized; axis=None reduces over every axis; keepdims keeps size-1 dims.
# CHECK-LABEL: func.func @reductions(%arg0: tensor<2x3x4xf32>)
# CHECK:         "lean.sum"(%arg0) {axes = array<i64: 2>, keepdims = false} : (tensor<2x3x4xf32>) -> tensor<2x3xf32>
# CHECK:         "lean.mean"(%arg0) {axes = array<i64: 0, 2>, keepdims = true} : (tensor<2x3x4xf32>) -> tensor<1x3x1xf32>
# CHECK:         "lean.max"(%arg0) {axes = array<i64: 0, 1, 2>, keepdims = false} : (tensor<2x3x4xf32>) -> tensor<f32>
def reductions(x):
    return x.sum(axis=-1), lm.mean(x, axis=(2, 0), keepdims=True), lm.max(x)


print(lm.trace_ir(reductions, lm.f32[2, 3, 4]))


# softmax(axis=-1) is stored with a non-negative axis; transpose defaults to reversing the axes.
# CHECK-LABEL: func.func @layers(%arg0: tensor<2x3xf64>)
# CHECK:         "lean.softmax"(%arg0) {axis = 1 : i64} : (tensor<2x3xf64>) -> tensor<2x3xf64>
# CHECK:         "lean.transpose"(%{{.*}}) {permutation = array<i64: 1, 0>} : (tensor<2x3xf64>) -> tensor<3x2xf64>
# CHECK:         "lean.concatenate"(%{{.*}}, %{{.*}}) {axis = 0 : i64} : (tensor<3x2xf64>, tensor<3x2xf64>) -> tensor<6x2xf64>
def layers(x):
    t = lm.softmax(x).T
    return lm.concatenate([t, t], axis=0)


print(lm.trace_ir(layers, lm.f64[2, 3]))


# conv2d takes int or pair stride/padding and stores pairs.
# CHECK-LABEL: func.func @conv(%arg0: tensor<1x2x6x6xf32>, %arg1: tensor<4x2x3x3xf32>) -> tensor<1x4x3x3xf32>
# CHECK-NEXT:    "lean.conv2d"(%arg0, %arg1) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>}
def conv(x, w):
    return lm.conv2d(x, w, stride=2, padding=1)


print(lm.trace_ir(conv, lm.f32[1, 2, 6, 6], lm.f32[4, 2, 3, 3]))


# Shape errors surface while tracing, naming the op, the operand specs and the user's line.
def bad(a, b):
    return a @ b


try:
    print(lm.trace_ir(bad, lm.f32[2, 3], lm.f32[4, 5]))
except lm.TraceError as e:
    print("TraceError:", e)
# CHECK: TraceError: lean.matmul: contraction dimensions differ: 3 and 4 (operands: f32[2, 3], f32[4, 5]) at {{.*}}ops.py:[[#@LINE-7]]:1
