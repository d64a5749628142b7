// End to end: lean-mlir-run lowers a lean function (and its VJP) for the CPU, runs it on .npy files,
// and agrees with the eager NumPy interpreter.
// RUN: %python -c "import numpy as np; np.save('%t.x.npy', np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)); np.save('%t.w.npy', np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]], np.float32)); np.save('%t.b.npy', np.array([0.25, 0.5, -2.0], np.float32))"
// RUN: lean-mlir-run %s --entry f --inputs %t.x.npy %t.w.npy %t.b.npy | FileCheck %s
// RUN: lean-mlir-run %s --entry f --inputs %t.x.npy %t.w.npy %t.b.npy --backend eager | FileCheck %s
// Already linalg-level input runs too:
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-to-linalg)' -o %t.linalg.mlir
// RUN: lean-mlir-run %t.linalg.mlir --entry f --inputs %t.x.npy %t.w.npy %t.b.npy | FileCheck %s
// The VJP, derived by lean-mlir-opt, then run: seed ones -> dw = x^T @ relu'(h), db = column sums of relu'(h).
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp{func=f wrt=1,2})' -o %t.mlir
// RUN: %python -c "import numpy as np; np.save('%t.g.npy', np.ones((2, 3), np.float32))"
// RUN: lean-mlir-run %t.mlir --entry f_vjp --inputs %t.x.npy %t.w.npy %t.b.npy %t.g.npy | FileCheck %s --check-prefix=VJP
// Outputs can be saved as .npy instead:
// RUN: lean-mlir-run %s --entry f --inputs %t.x.npy %t.w.npy %t.b.npy --output-dir %t.out
// RUN: %python -c "import numpy as np; print(np.load('%t.out/out0.npy').dtype, np.load('%t.out/out0.npy').sum())" | FileCheck %s --check-prefix=SAVED

// h = x @ w + b = [[2.75, -0.5, -1], [0.25, 1.5, -4.25]]; relu(h)
// CHECK:      result 0: shape (2, 3) float32
// CHECK-NEXT: {{\[\[}}2.75 0.   0.  ]
// CHECK-NEXT:  [0.25 1.5  0.  ]]
// CHECK-NOT:  result 1

// VJP:      result 0: shape (2, 3) float32
// VJP-NEXT: {{\[\[}} 0.  -1.   0. ]
// VJP-NEXT:  [ 2.5  0.5  0. ]]
// VJP-NEXT: result 1: shape (3,) float32
// VJP-NEXT: [2. 1. 0.]

// SAVED: float32 4.5
func.func @f(%x: tensor<2x2xf32>, %w: tensor<2x3xf32>, %b: tensor<3xf32>) -> tensor<2x3xf32> {
  %0 = "lean.matmul"(%x, %w) : (tensor<2x2xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %1 = "lean.broadcast_to"(%b) : (tensor<3xf32>) -> tensor<2x3xf32>
  %2 = "lean.add"(%0, %1) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %3 = "lean.relu"(%2) : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %3 : tensor<2x3xf32>
}
