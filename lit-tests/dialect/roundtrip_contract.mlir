// Round trip of the contractions: matmul (2-D, batched) and conv2d (NCHW/OIHW) with its adjoint maps.
// RUN: lean-mlir-opt %s | lean-mlir-opt | FileCheck %s
// RUN: mlir-opt --irdl-file=%irdl %s | FileCheck %s

// CHECK-LABEL: func.func @matmul(
// CHECK-NEXT:    %{{.*}} = "lean.matmul"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
// CHECK-NEXT:    return
func.func @matmul(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// CHECK-LABEL: func.func @batch_matmul(
// CHECK-NEXT:    %{{.*}} = "lean.matmul"(%arg0, %arg1) : (tensor<5x2x3xf64>, tensor<5x3x4xf64>) -> tensor<5x2x4xf64>
// CHECK-NEXT:    return
func.func @batch_matmul(%a: tensor<5x2x3xf64>, %b: tensor<5x3x4xf64>) -> tensor<5x2x4xf64> {
  %0 = "lean.matmul"(%a, %b) : (tensor<5x2x3xf64>, tensor<5x3x4xf64>) -> tensor<5x2x4xf64>
  return %0 : tensor<5x2x4xf64>
}

// CHECK-LABEL: func.func @conv2d(
// CHECK-NEXT:    %{{.*}} = "lean.conv2d"(%arg0, %arg1) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<1x2x5x5xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x3x3xf32>
// CHECK-NEXT:    return
func.func @conv2d(%x: tensor<1x2x5x5xf32>, %w: tensor<3x2x3x3xf32>) -> tensor<1x3x3x3xf32> {
  %0 = "lean.conv2d"(%x, %w) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<1x2x5x5xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x3x3xf32>
  return %0 : tensor<1x3x3x3xf32>
}

// CHECK-LABEL: func.func @conv2d_input_grad(
// CHECK-NEXT:    %{{.*}} = "lean.conv2d_input_grad"(%arg0, %arg1) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<1x3x3x3xf32>, tensor<3x2x3x3xf32>) -> tensor<1x2x5x5xf32>
// CHECK-NEXT:    return
func.func @conv2d_input_grad(%g: tensor<1x3x3x3xf32>, %w: tensor<3x2x3x3xf32>) -> tensor<1x2x5x5xf32> {
  %0 = "lean.conv2d_input_grad"(%g, %w) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<1x3x3x3xf32>, tensor<3x2x3x3xf32>) -> tensor<1x2x5x5xf32>
  return %0 : tensor<1x2x5x5xf32>
}

// CHECK-LABEL: func.func @conv2d_filter_grad(
// CHECK-NEXT:    %{{.*}} = "lean.conv2d_filter_grad"(%arg0, %arg1) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<1x2x5x5xf32>, tensor<1x3x3x3xf32>) -> tensor<3x2x3x3xf32>
// CHECK-NEXT:    return
func.func @conv2d_filter_grad(%x: tensor<1x2x5x5xf32>, %g: tensor<1x3x3x3xf32>) -> tensor<3x2x3x3xf32> {
  %0 = "lean.conv2d_filter_grad"(%x, %g) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<1x2x5x5xf32>, tensor<1x3x3x3xf32>) -> tensor<3x2x3x3xf32>
  return %0 : tensor<3x2x3x3xf32>
}
