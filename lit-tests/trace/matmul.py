# matmul follows NumPy: batch dimensions broadcast, 1-D operands are promoted and squeezed.
# RUN: %python %s | FileCheck %s
import lean_mlir as lm


def mm(a, b):
    return a @ b


# CHECK-LABEL: func.func @mm(%arg0: tensor<2x3xf32>, %arg1: tensor<3x4xf32>) -> tensor<2x4xf32>
# CHECK-NEXT:    "lean.matmul"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
# CHECK-NEXT:    return
print(lm.trace_ir(mm, lm.f32[2, 3], lm.f32[3, 4]))

# The unbatched rhs is broadcast to the batch of the lhs.
# CHECK-LABEL: func.func @mm(%arg0: tensor<5x2x3xf32>, %arg1: tensor<3x4xf32>) -> tensor<5x2x4xf32>
# CHECK-NEXT:    %[[B:.*]] = "lean.broadcast_to"(%arg1) : (tensor<3x4xf32>) -> tensor<5x3x4xf32>
# CHECK-NEXT:    "lean.matmul"(%arg0, %[[B]]) : (tensor<5x2x3xf32>, tensor<5x3x4xf32>) -> tensor<5x2x4xf32>
print(lm.trace_ir(mm, lm.f32[5, 2, 3], lm.f32[3, 4]))

# Batch dims (7, 1) and (5,) broadcast to (7, 5) on both sides.
# CHECK-LABEL: func.func @mm(%arg0: tensor<7x1x2x3xf64>, %arg1: tensor<5x3x4xf64>) -> tensor<7x5x2x4xf64>
# CHECK-DAG:     %[[A:.*]] = "lean.broadcast_to"(%arg0) : (tensor<7x1x2x3xf64>) -> tensor<7x5x2x3xf64>
# CHECK-DAG:     %[[B:.*]] = "lean.broadcast_to"(%arg1) : (tensor<5x3x4xf64>) -> tensor<7x5x3x4xf64>
# CHECK:         "lean.matmul"(%[[A]], %[[B]]) : (tensor<7x5x2x3xf64>, tensor<7x5x3x4xf64>) -> tensor<7x5x2x4xf64>
print(lm.trace_ir(mm, lm.f64[7, 1, 2, 3], lm.f64[5, 3, 4]))

# Matrix @ vector: the vector becomes a column, the result is squeezed back.
# CHECK-LABEL: func.func @mm(%arg0: tensor<2x3xf32>, %arg1: tensor<3xf32>) -> tensor<2xf32>
# CHECK-NEXT:    %[[V:.*]] = "lean.reshape"(%arg1) : (tensor<3xf32>) -> tensor<3x1xf32>
# CHECK-NEXT:    %[[Y:.*]] = "lean.matmul"(%arg0, %[[V]]) : (tensor<2x3xf32>, tensor<3x1xf32>) -> tensor<2x1xf32>
# CHECK-NEXT:    "lean.reshape"(%[[Y]]) : (tensor<2x1xf32>) -> tensor<2xf32>
print(lm.trace_ir(mm, lm.f32[2, 3], lm.f32[3]))
