// tanh: the VJP reuses the primal output y: g * (1 - y * y); the JVP likewise: t * (1 - y * y).
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp,lean-derive-jvp{func=f})' > %t
// RUN: FileCheck %s --check-prefix=JVP < %t
// RUN: FileCheck %s --check-prefix=VJP < %t

func.func @f(%x: tensor<5xf64>) -> tensor<5xf64> {
  %0 = "lean.tanh"(%x) : (tensor<5xf64>) -> tensor<5xf64>
  return %0 : tensor<5xf64>
}

// JVP-LABEL: func.func @f_jvp(%arg0: tensor<5xf64>, %arg1: tensor<5xf64>) -> (tensor<5xf64>, tensor<5xf64>)
// JVP-NEXT:    %[[Y:.*]] = "lean.tanh"(%arg0)
// JVP-NEXT:    %[[YY:.*]] = "lean.mul"(%[[Y]], %[[Y]])
// JVP-NEXT:    %[[ONE:.*]] = "lean.constant"() {value = dense<1.000000e+00> : tensor<5xf64>}
// JVP-NEXT:    %[[D:.*]] = "lean.sub"(%[[ONE]], %[[YY]])
// JVP-NEXT:    %[[DY:.*]] = "lean.mul"(%arg1, %[[D]])
// JVP-NEXT:    return %[[Y]], %[[DY]] : tensor<5xf64>, tensor<5xf64>

// VJP-LABEL: func.func @f_vjp(%arg0: tensor<5xf64>, %arg1: tensor<5xf64>) -> tensor<5xf64>
// VJP-NEXT:    %[[Y:.*]] = "lean.tanh"(%arg0)
// VJP-NEXT:    %[[YY:.*]] = "lean.mul"(%[[Y]], %[[Y]])
// VJP-NEXT:    %[[ONE:.*]] = "lean.constant"() {value = dense<1.000000e+00> : tensor<5xf64>}
// VJP-NEXT:    %[[D:.*]] = "lean.sub"(%[[ONE]], %[[YY]])
// VJP-NEXT:    %[[DX:.*]] = "lean.mul"(%arg1, %[[D]])
// VJP-NEXT:    return %[[DX]] : tensor<5xf64>
// VJP-NOT:     func.func @f_vjp_jvp
