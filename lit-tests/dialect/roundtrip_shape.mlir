// Round trip of the shape ops: the result type carries the target shape.
// RUN: lean-mlir-opt %s | lean-mlir-opt | FileCheck %s
// RUN: mlir-opt --irdl-file=%irdl %s | FileCheck %s

// CHECK-LABEL: func.func @broadcast_to(
// CHECK-NEXT:    %{{.*}} = "lean.broadcast_to"(%arg0) : (tensor<3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @broadcast_to(%x: tensor<3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.broadcast_to"(%x) : (tensor<3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @reshape(
// CHECK-NEXT:    %{{.*}} = "lean.reshape"(%arg0) : (tensor<2x3xf32>) -> tensor<3x2xf32>
// CHECK-NEXT:    return
func.func @reshape(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %0 = "lean.reshape"(%x) : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// CHECK-LABEL: func.func @transpose(
// CHECK-NEXT:    %{{.*}} = "lean.transpose"(%arg0) {permutation = array<i64: 2, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
// CHECK-NEXT:    return
func.func @transpose(%x: tensor<2x3x4xf32>) -> tensor<4x2x3xf32> {
  %0 = "lean.transpose"(%x) {permutation = array<i64: 2, 0, 1>} : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
  return %0 : tensor<4x2x3xf32>
}

// CHECK-LABEL: func.func @reverse(
// CHECK-NEXT:    %{{.*}} = "lean.reverse"(%arg0) {axes = array<i64: 0, 2>} : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT:    return
func.func @reverse(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
  %0 = "lean.reverse"(%x) {axes = array<i64: 0, 2>} : (tensor<2x3x4xf32>) -> tensor<2x3x4xf32>
  return %0 : tensor<2x3x4xf32>
}

// CHECK-LABEL: func.func @concatenate(
// CHECK-NEXT:    %{{.*}} = "lean.concatenate"(%arg0, %arg1) {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:    return
func.func @concatenate(%a: tensor<2x3xf32>, %b: tensor<2x5xf32>) -> tensor<2x8xf32> {
  %0 = "lean.concatenate"(%a, %b) {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}

// CHECK-LABEL: func.func @slice(
// CHECK-NEXT:    %{{.*}} = "lean.slice"(%arg0) {start = array<i64: 1, 2>} : (tensor<4x5xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @slice(%x: tensor<4x5xf32>) -> tensor<2x3xf32> {
  %0 = "lean.slice"(%x) {start = array<i64: 1, 2>} : (tensor<4x5xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @pad(
// CHECK-NEXT:    %{{.*}} = "lean.pad"(%arg0) {low = array<i64: 1, 2>} : (tensor<2x3xf32>) -> tensor<4x5xf32>
// CHECK-NEXT:    return
func.func @pad(%x: tensor<2x3xf32>) -> tensor<4x5xf32> {
  %0 = "lean.pad"(%x) {low = array<i64: 1, 2>} : (tensor<2x3xf32>) -> tensor<4x5xf32>
  return %0 : tensor<4x5xf32>
}
