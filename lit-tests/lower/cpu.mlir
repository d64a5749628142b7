// lean-lower-cpu: lean -> linalg -> LLVM dialect with C-interface and out-param entry points.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-lower-cpu)' | FileCheck %s
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-to-linalg,canonicalize,cse)' | FileCheck %s --check-prefix=LINALG

// CHECK-NOT:   "lean.
// CHECK-NOT:   linalg.
// CHECK:       llvm.func @f(
// CHECK-SAME:  attributes {llvm.emit_c_interface}
// CHECK:       llvm.func @_mlir_ciface_f(
// CHECK-NOT:   "lean.
// CHECK-NOT:   linalg.

// LINALG-LABEL: func.func @f(%arg0: tensor<4x8xf32>, %arg1: tensor<8xf32>) -> tensor<4x8xf32>
// LINALG-NOT:   "lean.
// LINALG:       linalg.generic
// LINALG:       math.exp
func.func @f(%x: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = "lean.broadcast_to"(%b) : (tensor<8xf32>) -> tensor<4x8xf32>
  %1 = "lean.add"(%x, %0) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %2 = "lean.exp"(%1) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %2 : tensor<4x8xf32>
}
