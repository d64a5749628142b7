// conv2d: the padding must be smaller than the kernel.
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

func.func @f(%x: tensor<1x1x4x4xf32>, %w: tensor<1x1x2x2xf32>) -> tensor<1x1x7x7xf32> {
  // CHECK: conv_padding.mlir:[[@LINE+1]]:8: error: 'lean.conv2d' op padding (2, 2) must be smaller than the kernel (2, 2)
  %0 = "lean.conv2d"(%x, %w) {padding = array<i64: 2, 2>, stride = array<i64: 1, 1>} : (tensor<1x1x4x4xf32>, tensor<1x1x2x2xf32>) -> tensor<1x1x7x7xf32>
  return %0 : tensor<1x1x7x7xf32>
}
