// Round trip of the lean.constant: splat, dense and rank-0 values.
// RUN: lean-mlir-opt %s | lean-mlir-opt | FileCheck %s
// RUN: mlir-opt --irdl-file=%irdl %s | FileCheck %s

// CHECK-LABEL: func.func @constant_splat(
// CHECK-NEXT:    %{{.*}} = "lean.constant"() {value = dense<1.500000e+00> : tensor<2x3xf32>} : () -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @constant_splat() -> tensor<2x3xf32> {
  %0 = "lean.constant"() {value = dense<1.5> : tensor<2x3xf32>} : () -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @constant_dense(
// CHECK-NEXT:    %{{.*}} = "lean.constant"() {value = dense<[1.000000e+00, -2.000000e+00]> : tensor<2xf64>} : () -> tensor<2xf64>
// CHECK-NEXT:    return
func.func @constant_dense() -> tensor<2xf64> {
  %0 = "lean.constant"() {value = dense<[1.0, -2.0]> : tensor<2xf64>} : () -> tensor<2xf64>
  return %0 : tensor<2xf64>
}

// CHECK-LABEL: func.func @constant_scalar(
// CHECK-NEXT:    %{{.*}} = "lean.constant"() {value = dense<5.000000e-01> : tensor<f32>} : () -> tensor<f32>
// CHECK-NEXT:    return
func.func @constant_scalar() -> tensor<f32> {
  %0 = "lean.constant"() {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
  return %0 : tensor<f32>
}
