// Round trip of the binary elementwise ops: both operands and the result share one type.
// RUN: lean-mlir-opt %s | lean-mlir-opt | FileCheck %s
// RUN: mlir-opt --irdl-file=%irdl %s | FileCheck %s

// CHECK-LABEL: func.func @add(
// CHECK-NEXT:    %{{.*}} = "lean.add"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @add(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.add"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @sub(
// CHECK-NEXT:    %{{.*}} = "lean.sub"(%arg0, %arg1) : (tensor<f64>, tensor<f64>) -> tensor<f64>
// CHECK-NEXT:    return
func.func @sub(%a: tensor<f64>, %b: tensor<f64>) -> tensor<f64> {
  %0 = "lean.sub"(%a, %b) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  return %0 : tensor<f64>
}

// CHECK-LABEL: func.func @mul(
// CHECK-NEXT:    %{{.*}} = "lean.mul"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @mul(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.mul"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @div(
// CHECK-NEXT:    %{{.*}} = "lean.div"(%arg0, %arg1) : (tensor<f64>, tensor<f64>) -> tensor<f64>
// CHECK-NEXT:    return
func.func @div(%a: tensor<f64>, %b: tensor<f64>) -> tensor<f64> {
  %0 = "lean.div"(%a, %b) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  return %0 : tensor<f64>
}

// CHECK-LABEL: func.func @pow(
// CHECK-NEXT:    %{{.*}} = "lean.pow"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @pow(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.pow"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @maximum(
// CHECK-NEXT:    %{{.*}} = "lean.maximum"(%arg0, %arg1) : (tensor<f64>, tensor<f64>) -> tensor<f64>
// CHECK-NEXT:    return
func.func @maximum(%a: tensor<f64>, %b: tensor<f64>) -> tensor<f64> {
  %0 = "lean.maximum"(%a, %b) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  return %0 : tensor<f64>
}

// CHECK-LABEL: func.func @minimum(
// CHECK-NEXT:    %{{.*}} = "lean.minimum"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @minimum(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.minimum"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @greater(
// CHECK-NEXT:    %{{.*}} = "lean.greater"(%arg0, %arg1) : (tensor<f64>, tensor<f64>) -> tensor<f64>
// CHECK-NEXT:    return
func.func @greater(%a: tensor<f64>, %b: tensor<f64>) -> tensor<f64> {
  %0 = "lean.greater"(%a, %b) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  return %0 : tensor<f64>
}

// CHECK-LABEL: func.func @equal(
// CHECK-NEXT:    %{{.*}} = "lean.equal"(%arg0, %arg1) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @equal(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.equal"(%a, %b) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @greater_equal(
// CHECK-NEXT:    %{{.*}} = "lean.greater_equal"(%arg0, %arg1) : (tensor<f64>, tensor<f64>) -> tensor<f64>
// CHECK-NEXT:    return
func.func @greater_equal(%a: tensor<f64>, %b: tensor<f64>) -> tensor<f64> {
  %0 = "lean.greater_equal"(%a, %b) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  return %0 : tensor<f64>
}

// CHECK-LABEL: func.func @not_equal(
// CHECK-NEXT:    %{{.*}} = "lean.not_equal"(%arg0, %arg1) : (tensor<f64>, tensor<f64>) -> tensor<f64>
// CHECK-NEXT:    return
func.func @not_equal(%a: tensor<f64>, %b: tensor<f64>) -> tensor<f64> {
  %0 = "lean.not_equal"(%a, %b) : (tensor<f64>, tensor<f64>) -> tensor<f64>
  return %0 : tensor<f64>
}

// CHECK-LABEL: func.func @where(
// CHECK-NEXT:    %{{.*}} = "lean.where"(%arg0, %arg1, %arg2) : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:    return
func.func @where(%c: tensor<3xf32>, %a: tensor<3xf32>, %b: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "lean.where"(%c, %a, %b) : (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  return %0 : tensor<3xf32>
}
