// VJP of a two-layer MLP loss: sum(square(tanh(x @ w1) @ w2)).
// The cotangent needs tanh's output (recomputed) but neither the final square nor the sum:
// dead primal ops are removed, so the loss value itself is not recomputed.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp{func=loss wrt=1,2})' | FileCheck %s
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp{func=loss wrt=1,2})' | FileCheck %s --check-prefix=ORDER

func.func @loss(%x: tensor<8x4xf32>, %w1: tensor<4x16xf32>, %w2: tensor<16x1xf32>) -> tensor<f32> {
  %0 = "lean.matmul"(%x, %w1) : (tensor<8x4xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
  %1 = "lean.tanh"(%0) : (tensor<8x16xf32>) -> tensor<8x16xf32>
  %2 = "lean.matmul"(%1, %w2) : (tensor<8x16xf32>, tensor<16x1xf32>) -> tensor<8x1xf32>
  %3 = "lean.square"(%2) : (tensor<8x1xf32>) -> tensor<8x1xf32>
  %4 = "lean.sum"(%3) {axes = array<i64: 0, 1>, keepdims = false} : (tensor<8x1xf32>) -> tensor<f32>
  return %4 : tensor<f32>
}

// CHECK-LABEL: func.func @loss_vjp(%arg0: tensor<8x4xf32>, %arg1: tensor<4x16xf32>, %arg2: tensor<16x1xf32>, %arg3: tensor<f32>) -> (tensor<4x16xf32>, tensor<16x1xf32>)
// CHECK-NOT:     "lean.square"
// CHECK-NOT:     "lean.sum"
// CHECK-COUNT-1: "lean.tanh"
// CHECK-NOT:     "lean.tanh"
// CHECK:         return %{{.*}}, %{{.*}} : tensor<4x16xf32>, tensor<16x1xf32>

// ORDER-LABEL: func.func @loss_vjp(
// ORDER:         %[[H:.*]] = "lean.matmul"(%arg0, %arg1) : (tensor<8x4xf32>, tensor<4x16xf32>) -> tensor<8x16xf32>
// ORDER-NEXT:    %[[T:.*]] = "lean.tanh"(%[[H]])
// ORDER-NEXT:    %[[Y:.*]] = "lean.matmul"(%[[T]], %arg2)
// The seed is broadcast back over the summed axes (sum's VJP), then square's rule 2 * y * g:
// ORDER-NEXT:    %[[S:.*]] = "lean.reshape"(%arg3) : (tensor<f32>) -> tensor<1x1xf32>
// ORDER-NEXT:    %[[G:.*]] = "lean.broadcast_to"(%[[S]]) : (tensor<1x1xf32>) -> tensor<8x1xf32>
// ORDER:         %[[TWOY:.*]] = "lean.mul"(%{{.*}}, %[[Y]])
// ORDER-NEXT:    %[[DY:.*]] = "lean.mul"(%[[G]], %[[TWOY]])
// dw2 = t^T @ dy
// ORDER:         %[[TT:.*]] = "lean.transpose"(%[[T]])
// ORDER-NEXT:    %[[DW2:.*]] = "lean.matmul"(%[[TT]], %[[DY]]) : (tensor<16x8xf32>, tensor<8x1xf32>) -> tensor<16x1xf32>
// tanh's rule: g * (1 - t * t)
// ORDER-NEXT:    "lean.mul"(%[[T]], %[[T]])
// ORDER:         %[[DW1:.*]] = "lean.matmul"(%{{.*}}, %{{.*}}) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// ORDER-NEXT:    return %[[DW1]], %[[DW2]]
