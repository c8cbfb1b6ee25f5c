// mma_ptx.cuh — the inline PTX the tensor-core kernels (attention_mma.cu, gemm_bias_gelu.cu) are built on:
// cp.async (global -> shared, 16 bytes, zero-fill), ldmatrix.x4 (.trans), mma.sync m16n8k16 fp16 -> fp32,
// ex2.approx.
// Fragment layouts: see the header of attention_mma.cu. Everything between the two markers below is replaced
// by CPU models of the same functions in dev/attention-mma-model, which runs the kernels on the CPU.
#pragma once
// Included after common.cuh (which brings cuda_fp16.h and constants.cuh); it includes nothing itself.

// ---- PTX wrappers: the only inline assembly of the tensor-core kernels (dev/attention-mma-model swaps this block for a
// ---- CPU model of each instruction). Shared-memory operands are passed as generic pointers.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy, bypassing L1; the bytes past src_bytes (0 or 16) are zero-filled.
__device__ __forceinline__ void cp_async_16(__half* dst, const __half* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until all of this thread's committed cp.async groups have landed (other threads' copies need a
// __syncthreads after it to be visible).
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Waits until at most N of this thread's committed cp.async groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait_group() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// Four 8x8 fp16 matrices; lane i gives the address of row i % 8 of matrix i / 8 (16-byte aligned).
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const __half* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row))
                 : "memory");
}

// As ldmatrix_x4, each matrix transposed: register j receives M_j[2t, 2t+1][g].
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const __half* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row))
                 : "memory");
}

// d += A (16x16 fp16, row) . B (16x8 fp16, col), fp32 accumulate; fragments as in the header.
__device__ __forceinline__ void mma_16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 2^x by the SFU (ex2.approx.ftz.f32: one MUFU.EX2, relative error ~2^-22, subnormal results flushed to 0,
// 2^-inf = 0). exp2f without fast-math wraps the same instruction in a range fix-up (3 more instructions).
__device__ __forceinline__ float ex2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
// ---- end of PTX wrappers

// Element offset of 16-byte chunk `chunk` of row `row` in a swizzled [rows][D] fp16 tile (see attention_mma.cu's
// header): 8 consecutive rows at one logical chunk hit 8 distinct 16-byte bank groups.
template <int D>
__device__ __forceinline__ int swizzle(int row, int chunk) {
    constexpr int CPR = D / 8;              // 16-byte chunks per row: 4 or 8
    constexpr int ROWS_PER_WINDOW = 8 / CPR;  // rows per 128-byte bank window: 2 or 1
    return row * D + 8 * (chunk ^ ((row / ROWS_PER_WINDOW) & (CPR - 1)));
}
