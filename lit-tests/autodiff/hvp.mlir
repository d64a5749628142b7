// Derivatives are lean functions again, so passes compose: the JVP of the VJP is a
// Hessian-vector product. For f(x) = sum(x * x * x): grad = 3 x^2 * g, H v = 6 x v * g.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp,lean-derive-jvp{func=f_vjp wrt=0},lean-cleanup)' -o %t.mlir
// RUN: FileCheck %s < %t.mlir
// Evaluate it (eager NumPy interpreter) at x = [1, 2, 3, 4], seed 1, v = ones:
// RUN: %python -c "import numpy as np; np.save('%t.x.npy', np.arange(1.0, 5.0)); np.save('%t.g.npy', np.array(1.0)); np.save('%t.v.npy', np.ones(4))"
// RUN: lean-mlir-run %t.mlir --entry f_vjp_jvp --inputs %t.x.npy %t.g.npy %t.v.npy --backend eager | FileCheck %s --check-prefix=VALUE

func.func @f(%x: tensor<4xf64>) -> tensor<f64> {
  %0 = "lean.mul"(%x, %x) : (tensor<4xf64>, tensor<4xf64>) -> tensor<4xf64>
  %1 = "lean.mul"(%0, %x) : (tensor<4xf64>, tensor<4xf64>) -> tensor<4xf64>
  %2 = "lean.sum"(%1) {axes = array<i64: 0>, keepdims = false} : (tensor<4xf64>) -> tensor<f64>
  return %2 : tensor<f64>
}

// CHECK-LABEL: func.func @f(
// CHECK-LABEL: func.func @f_vjp(%arg0: tensor<4xf64>, %arg1: tensor<f64>) -> tensor<4xf64>
// The HVP takes (x, seed, v) and returns (grad, H v), all lean ops, no f_vjp call.
// CHECK-LABEL: func.func @f_vjp_jvp(%arg0: tensor<4xf64>, %arg1: tensor<f64>, %arg2: tensor<4xf64>) -> (tensor<4xf64>, tensor<4xf64>)
// CHECK-NOT:     call
// CHECK:         "lean.mul"(%arg2, %arg0)
// CHECK:         return %{{.*}}, %{{.*}} : tensor<4xf64>, tensor<4xf64>
// CHECK-NEXT:  }

// grad = 3 x^2, H v = 6 x v
// VALUE:      result 0: shape (4,) float64
// VALUE-NEXT: [ 3. 12. 27. 48.]
// VALUE-NEXT: result 1: shape (4,) float64
// VALUE-NEXT: [ 6. 12. 18. 24.]
