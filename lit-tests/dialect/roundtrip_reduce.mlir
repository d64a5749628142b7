// Round trip of the reductions over `axes` (with keepdims) and normalizations along one `axis`.
// RUN: lean-mlir-opt %s | lean-mlir-opt | FileCheck %s
// RUN: mlir-opt --irdl-file=%irdl %s | FileCheck %s

// CHECK-LABEL: func.func @sum(
// CHECK-NEXT:    %{{.*}} = "lean.sum"(%arg0) {axes = array<i64: 0>, keepdims = false} : (tensor<2x3xf32>) -> tensor<3xf32>
// CHECK-NEXT:    return
func.func @sum(%x: tensor<2x3xf32>) -> tensor<3xf32> {
  %0 = "lean.sum"(%x) {axes = array<i64: 0>, keepdims = false} : (tensor<2x3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// CHECK-LABEL: func.func @mean(
// CHECK-NEXT:    %{{.*}} = "lean.mean"(%arg0) {axes = array<i64: 1>, keepdims = true} : (tensor<2x3xf32>) -> tensor<2x1xf32>
// CHECK-NEXT:    return
func.func @mean(%x: tensor<2x3xf32>) -> tensor<2x1xf32> {
  %0 = "lean.mean"(%x) {axes = array<i64: 1>, keepdims = true} : (tensor<2x3xf32>) -> tensor<2x1xf32>
  return %0 : tensor<2x1xf32>
}

// CHECK-LABEL: func.func @max(
// CHECK-NEXT:    %{{.*}} = "lean.max"(%arg0) {axes = array<i64: 0, 1>, keepdims = false} : (tensor<2x3xf32>) -> tensor<f32>
// CHECK-NEXT:    return
func.func @max(%x: tensor<2x3xf32>) -> tensor<f32> {
  %0 = "lean.max"(%x) {axes = array<i64: 0, 1>, keepdims = false} : (tensor<2x3xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// CHECK-LABEL: func.func @softmax(
// CHECK-NEXT:    %{{.*}} = "lean.softmax"(%arg0) {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @softmax(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.softmax"(%x) {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @log_softmax(
// CHECK-NEXT:    %{{.*}} = "lean.log_softmax"(%arg0) {axis = 0 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @log_softmax(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.log_softmax"(%x) {axis = 0 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @logsumexp(
// CHECK-NEXT:    %{{.*}} = "lean.logsumexp"(%arg0) {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2xf32>
// CHECK-NEXT:    return
func.func @logsumexp(%x: tensor<2x3xf32>) -> tensor<2xf32> {
  %0 = "lean.logsumexp"(%x) {axis = 1 : i64} : (tensor<2x3xf32>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}
