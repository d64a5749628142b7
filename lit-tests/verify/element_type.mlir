// Element types are f32 or f64 only; IRDL accepts any tensor, the lean verifier does not.
// RUN: mlir-opt --irdl-file=%irdl %s | FileCheck %s --check-prefix=IRDL
// RUN: not lean-mlir-opt %s 2>&1 | FileCheck %s

// IRDL: "lean.exp"(%arg0) : (tensor<4xf16>) -> tensor<4xf16>
func.func @f(%a: tensor<4xf16>) -> tensor<4xf16> {
  // CHECK: element_type.mlir:[[@LINE+1]]:8: error: 'lean.exp' op element type must be f32 or f64, got f16 in tensor<4xf16>
  %0 = "lean.exp"(%a) : (tensor<4xf16>) -> tensor<4xf16>
  return %0 : tensor<4xf16>
}
