# Tracing makes NumPy broadcasting explicit: lean's binary ops take operands of one type.
# RUN: %python %s | FileCheck %s
import lean_mlir as lm


# CHECK-LABEL: func.func @add_bias(%arg0: tensor<2x3xf32>, %arg1: tensor<3xf32>) -> tensor<2x3xf32>
# CHECK-NEXT:    %[[B:.*]] = "lean.broadcast_to"(%arg1) : (tensor<3xf32>) -> tensor<2x3xf32>
# CHECK-NEXT:    %[[Y:.*]] = "lean.add"(%arg0, %[[B]]) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
# CHECK-NEXT:    return %[[Y]]
def add_bias(x, b):
    return x + b


print(lm.trace_ir(add_bias, lm.f32[2, 3], lm.f32[3]))


# Both operands stretch: (4, 1) and (3,) broadcast to (4, 3).
# CHECK-LABEL: func.func @outer(%arg0: tensor<4x1xf64>, %arg1: tensor<3xf64>) -> tensor<4x3xf64>
# CHECK-DAG:     %[[A:.*]] = "lean.broadcast_to"(%arg0) : (tensor<4x1xf64>) -> tensor<4x3xf64>
# CHECK-DAG:     %[[B:.*]] = "lean.broadcast_to"(%arg1) : (tensor<3xf64>) -> tensor<4x3xf64>
# CHECK:         "lean.mul"(%[[A]], %[[B]]) : (tensor<4x3xf64>, tensor<4x3xf64>) -> tensor<4x3xf64>
def outer(a, b):
    return a * b


print(lm.trace_ir(outer, lm.f64[4, 1], lm.f64[3]))


# Python scalars become splat constants of the traced value's shape and element type.
# CHECK-LABEL: func.func @affine(%arg0: tensor<3xf64>) -> tensor<3xf64>
# CHECK-NEXT:    %[[TWO:.*]] = "lean.constant"() {value = dense<2.000000e+00> : tensor<3xf64>} : () -> tensor<3xf64>
# CHECK-NEXT:    %[[M:.*]] = "lean.mul"(%[[TWO]], %arg0)
# CHECK-NEXT:    %[[ONE:.*]] = "lean.constant"() {value = dense<1.000000e+00> : tensor<3xf64>} : () -> tensor<3xf64>
# CHECK-NEXT:    "lean.sub"(%[[M]], %[[ONE]]) : (tensor<3xf64>, tensor<3xf64>) -> tensor<3xf64>
def affine(x):
    return 2.0 * x - 1


print(lm.trace_ir(affine, lm.f64[3]))

# A rank-0 input is a scalar; it broadcasts like any other operand.
# CHECK-LABEL: func.func @scalar_input(%arg0: tensor<f32>, %arg1: tensor<2x2xf32>) -> tensor<2x2xf32>
# CHECK-NEXT:    "lean.broadcast_to"(%arg0) : (tensor<f32>) -> tensor<2x2xf32>
# CHECK-NEXT:    "lean.maximum"
def scalar_input(s, x):
    return lm.maximum(s, x)


print(lm.trace_ir(scalar_input, lm.f32[()], lm.f32[2, 2]))
