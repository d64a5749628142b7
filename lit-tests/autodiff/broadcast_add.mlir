// VJP of a broadcasting add: the bias's cotangent sums over the broadcast axes.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp)' | FileCheck %s

func.func @f(%x: tensor<4x3xf32>, %b: tensor<3xf32>) -> tensor<4x3xf32> {
  %0 = "lean.broadcast_to"(%b) : (tensor<3xf32>) -> tensor<4x3xf32>
  %1 = "lean.add"(%x, %0) : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
  return %1 : tensor<4x3xf32>
}

// (4, 1) -> (4, 5): the stretched size-1 axis is summed with keepdims.
func.func @g(%x: tensor<4x5xf64>, %c: tensor<4x1xf64>) -> tensor<4x5xf64> {
  %0 = "lean.broadcast_to"(%c) : (tensor<4x1xf64>) -> tensor<4x5xf64>
  %1 = "lean.mul"(%x, %0) : (tensor<4x5xf64>, tensor<4x5xf64>) -> tensor<4x5xf64>
  return %1 : tensor<4x5xf64>
}

// CHECK-LABEL: func.func @f_vjp(%arg0: tensor<4x3xf32>, %arg1: tensor<3xf32>, %arg2: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<3xf32>)
// CHECK-NEXT:    %[[S:.*]] = "lean.sum"(%arg2) {axes = array<i64: 0>, keepdims = true} : (tensor<4x3xf32>) -> tensor<1x3xf32>
// CHECK-NEXT:    %[[DB:.*]] = "lean.reshape"(%[[S]]) : (tensor<1x3xf32>) -> tensor<3xf32>
// CHECK-NEXT:    return %arg2, %[[DB]] : tensor<4x3xf32>, tensor<3xf32>

// CHECK-LABEL: func.func @g_vjp(%arg0: tensor<4x5xf64>, %arg1: tensor<4x1xf64>, %arg2: tensor<4x5xf64>) -> (tensor<4x5xf64>, tensor<4x1xf64>)
// CHECK:         %[[P:.*]] = "lean.mul"(%arg2, %arg0)
// CHECK-NEXT:    %[[DC:.*]] = "lean.sum"(%[[P]]) {axes = array<i64: 1>, keepdims = true} : (tensor<4x5xf64>) -> tensor<4x1xf64>
// CHECK-NEXT:    return %{{.*}}, %[[DC]] : tensor<4x5xf64>, tensor<4x1xf64>
