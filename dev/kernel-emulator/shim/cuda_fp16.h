// CPU emulation shim for testing xenc kernels: one OS thread per CUDA thread, one block at a time.
#pragma once
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstddef>
#include <barrier>
#include <vector>
#include <memory>
#include <algorithm>
using std::min; using std::max;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
struct __half { _Float16 v; };
struct __half2 { __half x, y; };
struct float2 { float x, y; };
struct int4 { int x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float __half2float(__half h) { return (float)h.v; }
inline __half __float2half(float f) { return {(_Float16)f}; }
inline float2 __half22float2(__half2 h) { return {(float)h.x.v, (float)h.y.v}; }
inline __half2 __floats2half2_rn(float a, float b) { return {{(_Float16)a}, {(_Float16)b}}; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float fmaxf(float a, float b) { return std::fmax(a, b); }
inline float exp2f(float a) { return std::exp2(a); }
inline float erff(float a) { return std::erf(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float tanhf(float a) { return std::tanh(a); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline float fmaf(float a, float b, float c) { return std::fma(a, b, c); }
struct EmuBlock {
    std::unique_ptr<std::barrier<>> block;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<float> slots;
};
extern EmuBlock* emu;
inline void __syncthreads() { emu->block->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned mask, float v, int off) {
    if (mask != 0xffffffffu) std::abort();
    const int t = threadIdx.x, w = t >> 5, lane = t & 31;
    emu->slots[t] = v;
    emu->warps[w]->arrive_and_wait();
    const float r = emu->slots[(w << 5) | (lane ^ off)];
    emu->warps[w]->arrive_and_wait();
    return r;
}
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
