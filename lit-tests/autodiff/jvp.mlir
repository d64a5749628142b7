// Forward mode: @f_jvp(x..., dx[wrt]...) -> (y..., dy...).
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-jvp)' | FileCheck %s
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-jvp{func=mm wrt=0})' | FileCheck %s --check-prefix=WRT

// Product rule: d(a @ b) = da @ b + a @ db.
func.func @mm(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>) -> tensor<2x4xf32> {
  %0 = "lean.matmul"(%a, %b) : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
  return %0 : tensor<2x4xf32>
}

// d exp(x) = dx * exp(x), reusing the primal output.
func.func @ex(%x: tensor<3xf64>) -> tensor<3xf64> {
  %0 = "lean.exp"(%x) : (tensor<3xf64>) -> tensor<3xf64>
  return %0 : tensor<3xf64>
}

// No tangent flows through stop_gradient: the output tangent is a zero constant.
func.func @sg(%x: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "lean.stop_gradient"(%x) : (tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}

// CHECK-LABEL: func.func @mm_jvp(%arg0: tensor<2x3xf32>, %arg1: tensor<3x4xf32>, %arg2: tensor<2x3xf32>, %arg3: tensor<3x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
// CHECK-NEXT:    %[[Y:.*]] = "lean.matmul"(%arg0, %arg1)
// CHECK-NEXT:    %[[T1:.*]] = "lean.matmul"(%arg2, %arg1)
// CHECK-NEXT:    %[[T2:.*]] = "lean.matmul"(%arg0, %arg3)
// CHECK-NEXT:    %[[DY:.*]] = "lean.add"(%[[T1]], %[[T2]])
// CHECK-NEXT:    return %[[Y]], %[[DY]]

// CHECK-LABEL: func.func @ex_jvp(%arg0: tensor<3xf64>, %arg1: tensor<3xf64>) -> (tensor<3xf64>, tensor<3xf64>)
// CHECK-NEXT:    %[[Y:.*]] = "lean.exp"(%arg0)
// CHECK-NEXT:    %[[DY:.*]] = "lean.mul"(%arg1, %[[Y]])
// CHECK-NEXT:    return %[[Y]], %[[DY]]

// CHECK-LABEL: func.func @sg_jvp(%arg0: tensor<3xf32>, %arg1: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>)
// CHECK-NEXT:    %[[Y:.*]] = "lean.stop_gradient"(%arg0)
// CHECK-NEXT:    %[[Z:.*]] = "lean.constant"() {value = dense<0.000000e+00> : tensor<3xf32>}
// CHECK-NEXT:    return %[[Y]], %[[Z]]

// Only a's tangent: one tangent argument, one matmul for it, no add.
// WRT-NOT:     func.func @ex_jvp
// WRT-LABEL: func.func @mm_jvp(%arg0: tensor<2x3xf32>, %arg1: tensor<3x4xf32>, %arg2: tensor<2x3xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>)
// WRT-NEXT:    %[[Y:.*]] = "lean.matmul"(%arg0, %arg1)
// WRT-NEXT:    %[[DY:.*]] = "lean.matmul"(%arg2, %arg1)
// WRT-NEXT:    return %[[Y]], %[[DY]]
