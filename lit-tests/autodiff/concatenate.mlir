// concatenate: the VJP slices the cotangent, the JVP pads each tangent into place.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp,lean-derive-jvp{func=f})' > %t
// RUN: FileCheck %s --check-prefix=VJP < %t
// RUN: FileCheck %s --check-prefix=JVP < %t

func.func @f(%a: tensor<2x3xf32>, %b: tensor<2x5xf32>) -> tensor<2x8xf32> {
  %0 = "lean.concatenate"(%a, %b) {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}

// VJP-LABEL: func.func @f_vjp(%arg0: tensor<2x3xf32>, %arg1: tensor<2x5xf32>, %arg2: tensor<2x8xf32>) -> (tensor<2x3xf32>, tensor<2x5xf32>)
// VJP-NOT:     "lean.concatenate"
// VJP-DAG:     %[[DA:.*]] = "lean.slice"(%arg2) {start = array<i64: 0, 0>} : (tensor<2x8xf32>) -> tensor<2x3xf32>
// VJP-DAG:     %[[DB:.*]] = "lean.slice"(%arg2) {start = array<i64: 0, 3>} : (tensor<2x8xf32>) -> tensor<2x5xf32>
// VJP:         return %[[DA]], %[[DB]]

// JVP-LABEL: func.func @f_jvp(%arg0: tensor<2x3xf32>, %arg1: tensor<2x5xf32>, %arg2: tensor<2x3xf32>, %arg3: tensor<2x5xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>)
// JVP-NEXT:    %[[Y:.*]] = "lean.concatenate"(%arg0, %arg1) {axis = 1 : i64}
// JVP-NEXT:    %[[PA:.*]] = "lean.pad"(%arg2) {low = array<i64: 0, 0>} : (tensor<2x3xf32>) -> tensor<2x8xf32>
// JVP-NEXT:    %[[PB:.*]] = "lean.pad"(%arg3) {low = array<i64: 0, 3>} : (tensor<2x5xf32>) -> tensor<2x8xf32>
// JVP-NEXT:    %[[DY:.*]] = "lean.add"(%[[PA]], %[[PB]])
// JVP-NEXT:    return %[[Y]], %[[DY]]
