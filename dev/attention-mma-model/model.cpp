// CPU model of kernels/attention_mma.cu (every entry) and kernels/gemm_bias_gelu.cu: the kernels' own source (its PTX wrapper block removed by run.sh)
// on the kernel emulator's runtime (dev/kernel-emulator/shim: one OS thread per CUDA thread, real block
// and warp barriers), with each PTX instruction modelled from the PTX ISA's fragment tables below. What it
// checks: the fragment and swizzle index arithmetic, masking, the online softmax and the output rows,
// against a float64 reference; under AddressSanitizer also every global and shared-memory index.
// cp.async copies land when a wait covers their group, as on the GPU (a stage read too early is stale).
// What it cannot check: timing, register limits, and the hardware's exact fp32 accumulation order inside
// an mma.
#include <thread>
#include <cstdio>
#include <random>
#include <functional>
#include <deque>
#include <vector>
#include <atomic>
#include <tuple>
#include "cuda_fp16.h"  // dev/kernel-emulator/shim/cuda_fp16.h
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
EmuBlock* emu;

inline void warp_barrier() { emu->warps[threadIdx.x >> 5]->arrive_and_wait(); }
inline void __syncwarp() { warp_barrier(); }

// ---- models of the PTX wrappers -----------------------------------------------------------------------
// Per-warp exchange: each lane publishes its operands, the warp meets, each lane computes its own result
// from everyone's operands, the warp meets again (so the exchange can be reused).
struct Exchange {
    unsigned words[32][6];
    const void* ptr[32];
};
static Exchange xch[32];
static int lane_id() { return threadIdx.x & 31; }
static Exchange& my_warp() { return xch[threadIdx.x >> 5]; }

static float h2f(unsigned short bits) {
    __half h;
    std::memcpy(&h, &bits, 2);
    return __half2float(h);
}
static float lo_half(unsigned w) { return h2f(w & 0xffff); }
static float hi_half(unsigned w) { return h2f(w >> 16); }

// cp.async: a copy lands in shared memory only when a wait covers its commit group, as on the GPU, so a
// kernel that reads a stage before waiting for it reads the stage's old contents and fails the check.
// The source is read at issue (global inputs do not change during a kernel). Copies issued but not
// committed, or committed but never waited for, when a thread returns are reported by launch().
struct PendingCopy {
    __half* dst;
    unsigned char bytes[16];
};
static thread_local std::vector<PendingCopy> uncommitted;
static thread_local std::deque<std::vector<PendingCopy>> committed;  // oldest group first
void cp_async_16(__half* dst, const __half* src, int src_bytes) {
    if (src_bytes != 0 && src_bytes != 16) std::abort();
    if (reinterpret_cast<uintptr_t>(dst) % 16) std::abort();
    PendingCopy c{dst, {}};
    if (src_bytes == 16) std::memcpy(c.bytes, src, 16);  // the source is read only when src-size is 16
    uncommitted.push_back(c);
}
void cp_async_commit() {
    committed.push_back(std::move(uncommitted));
    uncommitted.clear();
}
static void land_groups_beyond(size_t keep) {  // lands the oldest groups until at most `keep` remain
    while (committed.size() > keep) {
        for (const PendingCopy& c : committed.front()) std::memcpy(c.dst, c.bytes, 16);
        committed.pop_front();
    }
}
void cp_async_wait_all() { land_groups_beyond(0); }  // cp.async.wait_group 0: committed groups only
template <int N>
void cp_async_wait_group() { land_groups_beyond(N); }
static bool copies_outstanding() {  // empty groups are no copies
    if (!uncommitted.empty()) return true;
    for (const auto& group : committed)
        if (!group.empty()) return true;
    return false;
}

// ldmatrix .m8n8.x4 (.trans): lane i supplies row i % 8 of matrix i / 8; register j of lane (g, t) gets
// M_j[g][2t], M_j[g][2t+1] (plain) or M_j[2t][g], M_j[2t+1][g] (.trans), lower element in the low half.
static void ldmatrix_model(unsigned (&r)[4], const __half* row, bool trans) {
    Exchange& x = my_warp();
    const int lane = lane_id(), g = lane >> 2, t = lane & 3;
    if (reinterpret_cast<uintptr_t>(row) % 16) std::abort();
    x.ptr[lane] = row;
    warp_barrier();
    for (int j = 0; j < 4; ++j) {
        unsigned short lo, hi;
        if (!trans) {
            const __half* m = static_cast<const __half*>(x.ptr[8 * j + g]);
            std::memcpy(&lo, m + 2 * t, 2);
            std::memcpy(&hi, m + 2 * t + 1, 2);
        } else {
            std::memcpy(&lo, static_cast<const __half*>(x.ptr[8 * j + 2 * t]) + g, 2);
            std::memcpy(&hi, static_cast<const __half*>(x.ptr[8 * j + 2 * t + 1]) + g, 2);
        }
        r[j] = lo | (unsigned)hi << 16;
    }
    warp_barrier();
}
void ldmatrix_x4(unsigned (&r)[4], const __half* row) { ldmatrix_model(r, row, false); }
void ldmatrix_x4_trans(unsigned (&r)[4], const __half* row) { ldmatrix_model(r, row, true); }

// mma.m16n8k16.row.col f32.f16.f16.f32, lane (g, t):
//   A: a[i] holds A[g + 8 (i & 1)][2t + 8 (i >> 1) + {0, 1}];  B: b_i holds B[2t + 8 i + {0, 1}][g];
//   C/D: d[i] is C[g + 8 (i >> 1)][2t + (i & 1)].
void mma_16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    Exchange& x = my_warp();
    const int lane = lane_id(), g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; ++i) x.words[lane][i] = a[i];
    x.words[lane][4] = b0;
    x.words[lane][5] = b1;
    warp_barrier();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
        const int gl = l >> 2, tl = l & 3;
        for (int i = 0; i < 4; ++i) {
            const int row = gl + 8 * (i & 1), col = 2 * tl + 8 * (i >> 1);
            A[row][col] = lo_half(x.words[l][i]);
            A[row][col + 1] = hi_half(x.words[l][i]);
        }
        for (int i = 0; i < 2; ++i) {
            const int k = 2 * tl + 8 * i;
            B[k][gl] = lo_half(x.words[l][4 + i]);
            B[k + 1][gl] = hi_half(x.words[l][4 + i]);
        }
    }
    for (int i = 0; i < 4; ++i) {
        const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
        float acc = d[i];
        for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];  // fp16 x fp16 products are exact in fp32
        d[i] = acc;
    }
    warp_barrier();
}
// ex2.approx.ftz.f32: 2^x with subnormal results flushed to +0 (the approximation error is not modelled).
float ex2_approx(float x) {
    const float y = std::exp2(x);
    return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
}
// ---- end of the models -------------------------------------------------------------------------------

#include "common.cuh"
#include "gen/attention_mma.cu"
#include "gen/gemm_bias_gelu.cu"

int launch_errors = 0;
void launch(unsigned grid, unsigned block, const std::function<void()>& f) {
    blockDim.x = block;
    gridDim.x = grid;
    for (unsigned b = 0; b < grid; ++b) {
        EmuBlock e;
        e.block = std::make_unique<std::barrier<>>(block);
        for (unsigned w = 0; w < (block + 31) / 32; ++w)
            e.warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, block - 32 * w)));
        e.slots.assign(block, 0.f);
        emu = &e;
        std::vector<std::thread> th;
        std::atomic<int> outstanding{0};
        for (unsigned t = 0; t < block; ++t)
            th.emplace_back([&, t, b] {
                threadIdx.x = t;
                blockIdx.x = b;
                f();
                if (copies_outstanding()) ++outstanding;  // the block's shared memory goes to the next block
                uncommitted.clear();
                committed.clear();
            });
        for (auto& x : th) x.join();
        if (outstanding) {
            printf("block %u: %d threads returned with cp.async copies not waited for\n", b, outstanding.load());
            ++launch_errors;
        }
    }
}

std::mt19937 rng(4321);
std::vector<__half> rand_h(size_t n, float sc) {
    std::normal_distribution<float> d(0, 1);
    std::vector<__half> v(n);
    for (auto& x : v) x = __float2half(sc * d(rng));
    return v;
}
float F(__half h) { return __half2float(h); }
int fails = 0;

enum class Tiles { Full, Random, Partial };

// lens: pair lengths; heads; cls_only: query 0 only, out row p; tiles: Full = 64-query tiles, Random =
// random tile sizes 1..64, Partial = full tiles but every third one dropped (its rows must stay untouched).
// Which entries run: the default (attention_mma_hd32_f16 / _hd64_f16), the A/B candidate v3
// (attention_mma_v3_hd32_f16 / _hd64_f16) or v3's 4-stage ring (attention_mma_v3_s4_hd32_f16, D = 32 only).
enum class Entry { Default, V3, V3S4 };
const char* entry_name(Entry e) { return e == Entry::Default ? "" : e == Entry::V3 ? "_v3" : "_v3_s4"; }

void test(int D, std::vector<int> lens, int heads, bool cls_only, float qk_scale, Tiles tiles,
          Entry entry = Entry::Default) {
    const int n = lens.size();
    std::vector<int> cu(n + 1, 0);
    for (int i = 0; i < n; ++i) cu[i + 1] = cu[i] + lens[i];
    const int T = cu[n], H = heads * D;
    auto qkv = rand_h((size_t)T * 3 * H, qk_scale);  // exactly T rows: reads past them are ASan errors
    std::vector<int> outoff(n);
    std::vector<int4> work;
    std::vector<char> covered;  // per (output row, head): should be written
    const int out_rows = cls_only ? n : T;
    covered.assign((size_t)out_rows * heads, 0);
    int dropped = 0;
    for (int p = 0; p < n; ++p) {
        outoff[p] = cls_only ? p : cu[p];
        for (int h = 0; h < heads; ++h) {
            if (cls_only) {
                work.push_back({p, h, 0, 1});
                covered[(size_t)p * heads + h] = 1;
                continue;
            }
            for (int q0 = 0; q0 < lens[p];) {
                const int step = tiles == Tiles::Random ? 1 + rng() % ATTN_Q_TILE : ATTN_Q_TILE;
                const int q1 = std::min(lens[p], q0 + step);
                if (tiles == Tiles::Partial && rng() % 3 == 0) {
                    ++dropped;
                } else {
                    work.push_back({p, h, q0, q1});
                    for (int q = q0; q < q1; ++q) covered[(size_t)(cu[p] + q) * heads + h] = 1;
                }
                q0 = q1;
            }
        }
    }
    std::shuffle(work.begin(), work.end(), rng);
    work.push_back({0, heads, 0, 1});  // a head out of range: skipped
    std::vector<__half> ctx((size_t)out_rows * H, __float2half(-777.f));
    const float scale = 1.0f / std::sqrt((float)D);
    const int num_work = work.size();
    const unsigned grid = num_work + 3;  // blocks past num_work must be no-ops
    launch(grid, ATTN_THREADS, [&] {
        const auto args = std::make_tuple(qkv.data(), ctx.data(), cu.data(), outoff.data(), work.data(), num_work, heads, scale);
        if (entry == Entry::V3S4) std::apply(attention_mma_v3_s4_hd32_f16, args);
        else if (entry == Entry::V3) std::apply(D == 32 ? attention_mma_v3_hd32_f16 : attention_mma_v3_hd64_f16, args);
        else std::apply(D == 32 ? attention_mma_hd32_f16 : attention_mma_hd64_f16, args);
    });
    double err = 0;
    int wrong_writes = 0, unwritten = 0;
    for (int p = 0; p < n; ++p)
        for (int h = 0; h < heads; ++h)
            for (int q = 0; q < (cls_only ? 1 : lens[p]); ++q) {
                const size_t orow = outoff[p] + q;
                const __half* out = &ctx[orow * H + h * D];
                if (!covered[orow * heads + h]) {
                    for (int i = 0; i < D; ++i) wrong_writes += F(out[i]) != -777.f;
                    continue;
                }
                const __half* qr = &qkv[(size_t)(cu[p] + q) * 3 * H + h * D];
                std::vector<double> s(lens[p]);
                double mx = -1e300;
                for (int k = 0; k < lens[p]; ++k) {
                    const __half* kr = &qkv[(size_t)(cu[p] + k) * 3 * H + H + h * D];
                    double d = 0;
                    for (int i = 0; i < D; ++i) d += (double)F(qr[i]) * F(kr[i]);
                    s[k] = d * scale;
                    mx = std::max(mx, s[k]);
                }
                double sum = 0;
                for (auto& v : s) { v = std::exp(v - mx); sum += v; }
                for (int i = 0; i < D; ++i) {
                    double o = 0;
                    for (int k = 0; k < lens[p]; ++k) o += s[k] * F(qkv[(size_t)(cu[p] + k) * 3 * H + 2 * H + h * D + i]);
                    o /= sum;
                    if (F(out[i]) == -777.f) ++unwritten;
                    err = std::max(err, std::abs(o - F(out[i])) / std::max(1.0, std::abs(o)));
                }
            }
    const double tol = 2e-3;
    const bool ok = err <= tol && !wrong_writes && !unwritten;
    printf("attention_mma%s hd%d n=%d T=%d heads=%d %s%s qk_scale=%g  max_rel_err %.3e (tol %.0e)  unwritten %d  "
           "stray writes %d  %s\n",
           entry_name(entry), D, n, T, heads, cls_only ? "CLS" : "full", tiles == Tiles::Random ? " random-tiles" : tiles == Tiles::Partial ? " partial" : "",
           qk_scale, err, tol, unwritten, wrong_writes, ok ? "ok" : "FAIL");
    if (!ok) ++fails;
    (void)dropped;
}

// gemm_bias_gelu: y = gelu_erf(x . W^T + b) against float64 (erf GELU), rows past M never written (the y
// buffer has exactly M rows, so a stray write is an ASan error), blocks past the last row block no-ops.
// w64: the A/B entry gemm_bias_gelu_w64_f16 (4 warps of 64 x 64) instead of gemm_bias_gelu_f16.
void test_gemm(int M, int N, int K, bool w64 = false) {
    auto x = rand_h((size_t)M * K, 1.f), w = rand_h((size_t)N * K, 0.1f), b = rand_h(N, 0.5f);
    std::vector<__half> y((size_t)M * N, __float2half(-777.f));
    const unsigned grid = (N / GBG_BN) * ((M + GBG_BM - 1) / GBG_BM) + N / GBG_BN;  // one extra row of blocks
    launch(grid, w64 ? GBG_W64_THREADS : GBG_THREADS, [&] {
        if (w64) gemm_bias_gelu_w64_f16(x.data(), w.data(), b.data(), y.data(), M, N, K);
        else gemm_bias_gelu_f16(x.data(), w.data(), b.data(), y.data(), M, N, K);
    });
    double err = 0;
    int unwritten = 0;
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c) {
            double v = F(b[c]);
            for (int k = 0; k < K; ++k) v += (double)F(x[(size_t)r * K + k]) * F(w[(size_t)c * K + k]);
            const double want = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
            const float got = F(y[(size_t)r * N + c]);
            if (got == -777.f) ++unwritten;
            err = std::max(err, std::abs(want - got) / std::max(1.0, std::abs(want)));
        }
    const double tol = 2e-3;
    const bool ok = err <= tol && !unwritten;
    printf("gemm_bias_gelu%s M=%d N=%d K=%d  max_rel_err %.3e (tol %.0e)  unwritten %d  %s\n", w64 ? "_w64" : "", M,
           N, K, err, tol, unwritten, ok ? "ok" : "FAIL");
    if (!ok) ++fails;
}

int main() {
    // M around the 128-row block (a partial last block), several k-tiles (the 3-stage ring wraps), K = 32 (one).
    test_gemm(1, 128, 32);
    test_gemm(130, 256, 96);
    test_gemm(257, 128, 160);
    test_gemm(1, 128, 32, true);
    test_gemm(130, 256, 96, true);
    test_gemm(257, 128, 160, true);
    const std::vector<int> lens = {1, 2, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200};
    for (Entry e : {Entry::Default, Entry::V3}) {
        for (int D : {32, 64}) {
            test(D, lens, 2, false, 1.f, Tiles::Full, e);
            test(D, lens, 3, true, 1.f, Tiles::Full, e);
            test(D, {512, 1, 300, 511}, 1, false, 4.f, Tiles::Full, e);
            test(D, {512, 5, 77}, 2, true, 4.f, Tiles::Full, e);
            test(D, {300, 1, 64, 129, 9}, 2, false, 2.f, Tiles::Random, e);
            test(D, {200, 3, 130, 70}, 2, false, 1.f, Tiles::Partial, e);
        }
        // hd32 runs 32-key tiles, hd64 64-key tiles: lengths around both tile sizes.
        for (int D : {32, 64}) test(D, {1, 31, 32, 33, 63, 64, 65, 95, 96, 97, 128, 200}, 2, false, 1.f, Tiles::Full, e);
    }
    // v3's 4-stage ring: lengths around 1, 2, 3, 4 and 5 tiles of 32 keys (prologue with fewer tiles than
    // stages, the ring wrapping), [CLS]-only and random tiles.
    test(32, {1, 31, 32, 33, 64, 65, 96, 97, 128, 129, 160, 161, 200, 512}, 2, false, 1.f, Tiles::Full, Entry::V3S4);
    test(32, {512, 5, 77, 130}, 2, true, 4.f, Tiles::Full, Entry::V3S4);
    test(32, {300, 1, 64, 129, 9}, 2, false, 2.f, Tiles::Random, Entry::V3S4);
    // Long inputs (RoBERTa / XLM-R up to 8,192 positions) through the default kernel: past 2,048 keys in
    // full, 8,192 for [CLS] only.
    test(64, {2100, 5}, 1, false, 1.f, Tiles::Full, Entry::Default);
    test(64, {8192, 3}, 2, true, 1.f, Tiles::Full, Entry::Default);
    fails += launch_errors;
    printf("%s (%d failures)\n", fails ? "FAILED" : "ALL OK", fails);
    return fails != 0;
}
