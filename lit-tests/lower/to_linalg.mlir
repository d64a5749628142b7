// lean-to-linalg on representative ops: every lean op is gone, named linalg ops where they fit.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-to-linalg)' | FileCheck %s

// CHECK-NOT: "lean.
// CHECK: #[[REV:.*]] = affine_map<(d0, d1) -> (d0, -d1 + 2)>
// CHECK: #[[WIN:.*]] = affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d4 * 2 + d2, d5 * 2 + d3)>

// CHECK-LABEL: func.func @mm(
// CHECK:         %[[Z:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<2x4xf32>)
// CHECK:         linalg.matmul ins(%arg0, %arg1 : tensor<2x3xf32>, tensor<3x4xf32>) outs(%[[Z]] : tensor<2x4xf32>)
func.func @mm(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// CHECK-LABEL: func.func @bmm(
// CHECK:         linalg.batch_matmul ins(%arg0, %arg1 : tensor<5x2x3xf64>, tensor<5x3x4xf64>)
func.func @bmm(%a: tensor<5x2x3xf64>, %b: tensor<5x3x4xf64>) -> tensor<5x2x4xf64> {
  %0 = "lean.matmul"(%a, %b) : (tensor<5x2x3xf64>, tensor<5x3x4xf64>) -> tensor<5x2x4xf64>
  return %0 : tensor<5x2x4xf64>
}

// CHECK-LABEL: func.func @sum(
// CHECK:         linalg.reduce ins(%arg0 : tensor<2x3xf32>) outs(%{{.*}} : tensor<3xf32>) dimensions = [0]
// CHECK:           arith.addf
func.func @sum(%x: tensor<2x3xf32>) -> tensor<3xf32> {
  %0 = "lean.sum"(%x) {axes = array<i64: 0>, keepdims = false} : (tensor<2x3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// CHECK-LABEL: func.func @max_all(
// CHECK:         linalg.reduce ins(%arg0 : tensor<2x3xf32>) outs(%{{.*}} : tensor<f32>) dimensions = [0, 1]
// CHECK:           arith.maximumf
func.func @max_all(%x: tensor<2x3xf32>) -> tensor<f32> {
  %0 = "lean.max"(%x) {axes = array<i64: 0, 1>, keepdims = false} : (tensor<2x3xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}

// Elementwise ops become all-parallel linalg.generic with a scalar body.
// CHECK-LABEL: func.func @ew(
// CHECK:         %[[T:.*]] = linalg.generic {{{.*}}iterator_types = ["parallel", "parallel"]} ins(%arg0 : tensor<2x3xf32>)
// CHECK:           math.tanh
// CHECK:         linalg.generic {{{.*}}iterator_types = ["parallel", "parallel"]} ins(%[[T]], %arg1 : tensor<2x3xf32>, tensor<2x3xf32>)
// CHECK:           arith.mulf
func.func @ew(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.tanh"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  %1 = "lean.mul"(%0, %y) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %1 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @rev(
// CHECK:         linalg.generic {indexing_maps = [#[[REV]], #{{.*}}], iterator_types = ["parallel", "parallel"]} ins(%arg0 : tensor<2x3xf32>)
func.func @rev(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.reverse"(%x) {axes = array<i64: 1>} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @tr(
// CHECK:         linalg.transpose ins(%arg0 : tensor<2x3xf32>) outs(%{{.*}} : tensor<3x2xf32>) permutation = [1, 0]
func.func @tr(%x: tensor<2x3xf32>) -> tensor<3x2xf32> {
  %0 = "lean.transpose"(%x) {permutation = array<i64: 1, 0>} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// A convolution: the padded input's windows copied (im2col, stride 2), then w (3 x 18) @ patches (18 x 9).
// CHECK-LABEL: func.func @conv(
// CHECK:         tensor.insert_slice %arg0 into %{{.*}}[0, 0, 1, 1] [1, 2, 5, 5] [1, 1, 1, 1] : tensor<1x2x5x5xf32> into tensor<1x2x7x7xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[WIN]], #{{.*}}], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%{{.*}} : tensor<1x2x7x7xf32>) outs(%{{.*}} : tensor<1x2x3x3x3x3xf32>)
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%{{.*}}, %{{.*}} : tensor<3x18xf32>, tensor<1x18x9xf32>) outs(%{{.*}} : tensor<1x3x9xf32>)
// CHECK:           arith.mulf
// CHECK-NEXT:      arith.addf
func.func @conv(%x: tensor<1x2x5x5xf32>, %w: tensor<3x2x3x3xf32>) -> tensor<1x3x3x3xf32> {
  %0 = "lean.conv2d"(%x, %w) {padding = array<i64: 1, 1>, stride = array<i64: 2, 2>} : (tensor<1x2x5x5xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x3x3xf32>
  return %0 : tensor<1x3x3x3xf32>
}
