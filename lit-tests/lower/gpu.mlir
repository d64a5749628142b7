// lean-lower-gpu compiles (no device needed): lean -> linalg -> parallel loops -> gpu kernels -> PTX,
// with host code that allocates, copies and launches through the MLIR CUDA runtime wrappers.
// RUN: lean-mlir-opt %s --pass-pipeline='builtin.module(lean-lower-gpu{chip=sm_80 format=isa})' | FileCheck %s
// An unsupported chip is rejected before any native code can abort the process:
// RUN: not lean-mlir-opt %s --pass-pipeline='builtin.module(lean-lower-gpu{chip=sm_20})' 2>&1 | FileCheck %s --check-prefix=BADCHIP

// CHECK-NOT:   "lean.
// CHECK:       llvm.func @f(
// CHECK:       llvm.call @mgpuStreamCreate
// CHECK:       gpu.launch_func <%{{.*}} : !llvm.ptr> @[[K:f_kernel[_0-9]*]]::@f_kernel
// CHECK:       llvm.call @mgpuStreamSynchronize
// CHECK:       gpu.binary @[[K]] [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">
// CHECK-SAME:  assembly = "
// CHECK-SAME:  .target sm_80
// CHECK-SAME:  .entry f_kernel

// BADCHIP: error: pass 'lean-lower-gpu' failed: ValueError: unsupported GPU chip 'sm_20'
func.func @f(%x: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = "lean.broadcast_to"(%b) : (tensor<8xf32>) -> tensor<4x8xf32>
  %1 = "lean.add"(%x, %0) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  %2 = "lean.exp"(%1) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %2 : tensor<4x8xf32>
}
