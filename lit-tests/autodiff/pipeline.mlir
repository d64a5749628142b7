// Lean passes mix with upstream passes in one pipeline; upstream passes see lean ops as opaque.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp{func=f wrt=0},canonicalize,func.func(cse),lean-cleanup,symbol-privatize{exclude=f_vjp},symbol-dce)' | FileCheck %s
// Errors in a pipeline: unknown pass, bad option, bad wrt -> a message and exit code 1.
// RUN: not lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp,no-such-pass)' 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-vjp{fun=f})' 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not lean-mlir-opt %s --pass-pipeline='builtin.module(lean-derive-jvp{wrt=3})' 2>&1 | FileCheck %s --check-prefix=WRT

func.func @f(%x: tensor<3xf32>, %y: tensor<3xf32>) -> tensor<3xf32> {
  %0 = "lean.sin"(%x) : (tensor<3xf32>) -> tensor<3xf32>
  %1 = "lean.mul"(%0, %y) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  return %1 : tensor<3xf32>
}

// @f became private and unused: symbol-dce removed it; only @f_vjp is left.
// CHECK-NOT:   func.func @f(
// CHECK-LABEL: func.func @f_vjp(%arg0: tensor<3xf32>, %arg1: tensor<3xf32>, %arg2: tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:    %[[G:.*]] = "lean.mul"(%arg2, %arg1)
// CHECK-NEXT:    %[[C:.*]] = "lean.cos"(%arg0)
// CHECK-NEXT:    %[[DX:.*]] = "lean.mul"(%[[G]], %[[C]])
// CHECK-NEXT:    return %[[DX]] : tensor<3xf32>

// UNKNOWN: lean-mlir-opt: error: {{.*}} 'no-such-pass' does not refer to a registered pass or pass pipeline
// UNKNOWN-NOT: Traceback
// OPTION: error: pass 'lean-derive-vjp' has no option 'fun' (options: func, wrt, with-primal)
// WRT: error: pass 'lean-derive-jvp' failed: ValueError: jvp of @f: wrt must list distinct input indices in [0, 2), got [3]
