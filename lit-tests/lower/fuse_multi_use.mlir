// lean-fuse-linalg: multi-use values fuse. The JVP of sum(exp(sin(x) * x + tanh(x))) (sin and tanh
// each feed the primal and the tangent) becomes ONE reduction generic with two results; the VJP one
// parallel generic (exp and the gradient) and the sum of exp. A producer whose first user reads a
// reduction of it does not fuse (the reduction must come first).
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-to-linalg,lean-fuse-linalg)' | FileCheck %s

// CHECK-LABEL: func.func @jvp(
// CHECK-COUNT-1: linalg.generic
// CHECK-SAME:      iterator_types = ["reduction"]
// CHECK-SAME:      ins(%arg0, %arg1 : tensor<64xf32>, tensor<64xf32>)
// CHECK-DAG:       math.tanh
// CHECK-DAG:       math.sin
// CHECK-DAG:       math.cos
// CHECK-DAG:       math.exp
// CHECK:         } -> (tensor<f32>, tensor<f32>)
// CHECK-NOT:     linalg.generic
// CHECK:         return
func.func @jvp(%x: tensor<64xf32>, %dx: tensor<64xf32>) -> (tensor<f32>, tensor<f32>) {
  %s = "lean.sin"(%x) : (tensor<64xf32>) -> tensor<64xf32>
  %c = "lean.cos"(%x) : (tensor<64xf32>) -> tensor<64xf32>
  %t = "lean.tanh"(%x) : (tensor<64xf32>) -> tensor<64xf32>
  %sx = "lean.mul"(%s, %x) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %z = "lean.add"(%sx, %t) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %e = "lean.exp"(%z) : (tensor<64xf32>) -> tensor<64xf32>
  %y = "lean.sum"(%e) {axes = array<i64: 0>, keepdims = false} : (tensor<64xf32>) -> tensor<f32>
  %cdx = "lean.mul"(%c, %dx) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %a = "lean.mul"(%cdx, %x) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %b = "lean.mul"(%s, %dx) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %t2 = "lean.mul"(%t, %t) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %dt = "lean.mul"(%t2, %dx) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %ab = "lean.add"(%a, %b) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %dz = "lean.sub"(%ab, %dt) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %de = "lean.mul"(%dz, %e) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  %dy = "lean.sum"(%de) {axes = array<i64: 0>, keepdims = false} : (tensor<64xf32>) -> tensor<f32>
  return %y, %dy : tensor<f32>, tensor<f32>
}

// CHECK-LABEL: func.func @vjp(
// CHECK:         %[[F:.*]]:2 = linalg.generic
// CHECK-SAME:      iterator_types = ["parallel"]
// CHECK:           math.exp
// CHECK:           math.cos
// CHECK:         } -> (tensor<64xf32>, tensor<64xf32>)
// CHECK:         %[[S:.*]] = linalg.generic
// CHECK-SAME:      iterator_types = ["reduction"]
// CHECK-SAME:      ins(%[[F]]#0 : tensor<64xf32>)
// CHECK:         return %[[S]], %[[F]]#1
func.func @vjp(%x: tensor<64xf32>) -> (tensor<f32>, tensor<64xf32>) {
  %s = "lean.sin"(%x) : (tensor<64xf32>) -> tensor<64xf32>
  %e = "lean.exp"(%s) : (tensor<64xf32>) -> tensor<64xf32>
  %y = "lean.sum"(%e) {axes = array<i64: 0>, keepdims = false} : (tensor<64xf32>) -> tensor<f32>
  %c = "lean.cos"(%x) : (tensor<64xf32>) -> tensor<64xf32>
  %g = "lean.mul"(%e, %c) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  return %y, %g : tensor<f32>, tensor<64xf32>
}

// CHECK-LABEL: func.func @normalize(
// CHECK:         %[[E:.*]] = linalg.generic
// CHECK:           math.exp
// CHECK:         %[[S:.*]] = linalg.generic
// CHECK-SAME:      ins(%[[E]] : tensor<64xf32>)
// CHECK:         linalg.generic
// CHECK-SAME:      ins(%[[E]], %[[S]] : tensor<64xf32>, tensor<f32>)
// CHECK:           arith.divf
func.func @normalize(%x: tensor<64xf32>) -> tensor<64xf32> {
  %e = "lean.exp"(%x) : (tensor<64xf32>) -> tensor<64xf32>
  %s = "lean.sum"(%e) {axes = array<i64: 0>, keepdims = false} : (tensor<64xf32>) -> tensor<f32>
  %b = "lean.broadcast_to"(%s) : (tensor<f32>) -> tensor<64xf32>
  %r = "lean.div"(%e, %b) : (tensor<64xf32>, tensor<64xf32>) -> tensor<64xf32>
  return %r : tensor<64xf32>
}
