// Round trip of the unary elementwise ops: result type == operand type (f32 and f64).
// RUN: lean-mlir-opt %s | lean-mlir-opt | FileCheck %s
// RUN: mlir-opt --irdl-file=%irdl %s | FileCheck %s

// CHECK-LABEL: func.func @neg(
// CHECK-NEXT:    %{{.*}} = "lean.neg"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @neg(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.neg"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @square(
// CHECK-NEXT:    %{{.*}} = "lean.square"(%arg0) : (tensor<4xf64>) -> tensor<4xf64>
// CHECK-NEXT:    return
func.func @square(%x: tensor<4xf64>) -> tensor<4xf64> {
  %0 = "lean.square"(%x) : (tensor<4xf64>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}

// CHECK-LABEL: func.func @sqrt(
// CHECK-NEXT:    %{{.*}} = "lean.sqrt"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @sqrt(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.sqrt"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @abs(
// CHECK-NEXT:    %{{.*}} = "lean.abs"(%arg0) : (tensor<4xf64>) -> tensor<4xf64>
// CHECK-NEXT:    return
func.func @abs(%x: tensor<4xf64>) -> tensor<4xf64> {
  %0 = "lean.abs"(%x) : (tensor<4xf64>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}

// CHECK-LABEL: func.func @sign(
// CHECK-NEXT:    %{{.*}} = "lean.sign"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @sign(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.sign"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @exp(
// CHECK-NEXT:    %{{.*}} = "lean.exp"(%arg0) : (tensor<4xf64>) -> tensor<4xf64>
// CHECK-NEXT:    return
func.func @exp(%x: tensor<4xf64>) -> tensor<4xf64> {
  %0 = "lean.exp"(%x) : (tensor<4xf64>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}

// CHECK-LABEL: func.func @log(
// CHECK-NEXT:    %{{.*}} = "lean.log"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @log(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.log"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @sin(
// CHECK-NEXT:    %{{.*}} = "lean.sin"(%arg0) : (tensor<4xf64>) -> tensor<4xf64>
// CHECK-NEXT:    return
func.func @sin(%x: tensor<4xf64>) -> tensor<4xf64> {
  %0 = "lean.sin"(%x) : (tensor<4xf64>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}

// CHECK-LABEL: func.func @cos(
// CHECK-NEXT:    %{{.*}} = "lean.cos"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @cos(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.cos"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @tanh(
// CHECK-NEXT:    %{{.*}} = "lean.tanh"(%arg0) : (tensor<4xf64>) -> tensor<4xf64>
// CHECK-NEXT:    return
func.func @tanh(%x: tensor<4xf64>) -> tensor<4xf64> {
  %0 = "lean.tanh"(%x) : (tensor<4xf64>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}

// CHECK-LABEL: func.func @sigmoid(
// CHECK-NEXT:    %{{.*}} = "lean.sigmoid"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @sigmoid(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.sigmoid"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @relu(
// CHECK-NEXT:    %{{.*}} = "lean.relu"(%arg0) : (tensor<4xf64>) -> tensor<4xf64>
// CHECK-NEXT:    return
func.func @relu(%x: tensor<4xf64>) -> tensor<4xf64> {
  %0 = "lean.relu"(%x) : (tensor<4xf64>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}

// CHECK-LABEL: func.func @softplus(
// CHECK-NEXT:    %{{.*}} = "lean.softplus"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @softplus(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.softplus"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @stop_gradient(
// CHECK-NEXT:    %{{.*}} = "lean.stop_gradient"(%arg0) : (tensor<4xf64>) -> tensor<4xf64>
// CHECK-NEXT:    return
func.func @stop_gradient(%x: tensor<4xf64>) -> tensor<4xf64> {
  %0 = "lean.stop_gradient"(%x) : (tensor<4xf64>) -> tensor<4xf64>
  return %0 : tensor<4xf64>
}

// CHECK-LABEL: func.func @clamp(
// CHECK-NEXT:    %{{.*}} = "lean.clamp"(%arg0) {hi = 2.500000e+00 : f64, lo = -1.000000e+00 : f64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @clamp(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.clamp"(%x) {lo = -1.0 : f64, hi = 2.5 : f64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @erf(
// CHECK-NEXT:    %{{.*}} = "lean.erf"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @erf(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.erf"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @log1p(
// CHECK-NEXT:    %{{.*}} = "lean.log1p"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @log1p(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.log1p"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// CHECK-LABEL: func.func @expm1(
// CHECK-NEXT:    %{{.*}} = "lean.expm1"(%arg0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
// CHECK-NEXT:    return
func.func @expm1(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.expm1"(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}
