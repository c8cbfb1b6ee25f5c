#include <thread>
#include <cstdio>
#include <random>
#include <functional>
#include "cuda_fp16.h"  // shim/cuda_fp16.h: the emulation layer
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
EmuBlock* emu;
alignas(16) static float dyn_smem[1 << 14];
#include "common.cuh"
#include "gen/embed_layernorm.cu"
#include "gen/add_bias_layernorm.cu"
#include "gen/bias_gelu.cu"
#include "gen/gather_rows.cu"
#include "gen/pooler_classifier.cu"
#include "gen/attention_varlen.cu"

void launch(unsigned grid, unsigned block, const std::function<void()>& f) {
    blockDim.x = block; gridDim.x = grid;
    for (unsigned b = 0; b < grid; ++b) {
        EmuBlock e; e.block = std::make_unique<std::barrier<>>(block);
        for (unsigned w = 0; w < (block + 31) / 32; ++w) e.warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, block - 32 * w)));
        e.slots.assign(block, 0.f); emu = &e;
        std::vector<std::thread> th;
        for (unsigned t = 0; t < block; ++t) th.emplace_back([&, t, b] { threadIdx.x = t; blockIdx.x = b; f(); });
        for (auto& x : th) x.join();
    }
}

std::mt19937 rng(1234);
std::vector<__half> rand_h(size_t n, float sc = 1.f, float off = 0.f) {
    std::normal_distribution<float> d(0, 1); std::vector<__half> v(n);
    for (auto& x : v) x = __float2half(off + sc * d(rng)); return v;
}
float F(__half h) { return __half2float(h); }
int fails = 0;
void report(const char* name, double maxerr, double tol) {
    printf("%-48s max_abs_err %.3e  tol %.1e  %s\n", name, maxerr, tol, maxerr <= tol ? "ok" : "FAIL");
    if (!(maxerr <= tol)) ++fails;
}
void ln_ref(std::vector<double>& v, const __half* g, const __half* b, double eps) {
    double m = 0; for (double x : v) m += x; m /= v.size();
    double q = 0; for (double x : v) q += (x - m) * (x - m); q /= v.size();
    for (size_t i = 0; i < v.size(); ++i) v[i] = (v[i] - m) / std::sqrt(q + eps) * F(g[i]) + F(b[i]);
}

// A copy of v placed as a device buffer would be: at a 16-byte aligned address plus `off` elements (off = 2
// leaves it only 4-byte aligned, which sends the kernels to their half2 paths), fenced by sentinels that
// nothing may overwrite.
struct Fenced {
    static constexpr float kSentinel = -555.f;
    std::vector<__half> store;
    size_t at, n;
    Fenced(const std::vector<__half>& v, int off) : n(v.size()) {
        store.assign(v.size() + 64, __float2half(kSentinel));
        const size_t misalign = (reinterpret_cast<size_t>(store.data()) & 15) / sizeof(__half);
        at = (8 - misalign) % 8 + 16 + off;
        std::copy(v.begin(), v.end(), store.begin() + at);
    }
    __half* p() { return store.data() + at; }
    __half operator[](size_t i) const { return store[at + i]; }
    bool fences_ok() const {
        for (size_t i = 0; i < store.size(); ++i)
            if ((i < at || i >= at + n) && F(store[i]) != kSentinel) return false;
        return true;
    }
};

void test_embed(int T, int H, unsigned block, unsigned grid, int off = 0) {
    int V = 50, P = 40, TV = 2;
    auto we = rand_h((size_t)V * H), pe = rand_h((size_t)P * H), te = rand_h((size_t)TV * H), g = rand_h(H, .2f, 1.f), b = rand_h(H, .2f);
    std::vector<int> ids(T), tt(T), pos(T);
    for (int t = 0; t < T; ++t) { ids[t] = rng() % V; tt[t] = rng() % TV; pos[t] = rng() % P; }
    Fenced dwe(we, off), dpe(pe, off), dte(te, off), dg(g, off), db(b, off);
    Fenced out(std::vector<__half>((size_t)T * H, __float2half(-777.f)), off);
    launch(grid, block, [&] { embed_layernorm_f16(ids.data(), tt.data(), pos.data(), dwe.p(), dpe.p(), dte.p(), dg.p(), db.p(), out.p(), T, H, 1e-12f); });
    double err = 0;
    for (int t = 0; t < T; ++t) {
        std::vector<double> v(H);
        for (int c = 0; c < H; ++c) v[c] = (double)F(we[(size_t)ids[t] * H + c]) + F(pe[(size_t)pos[t] * H + c]) + F(te[(size_t)tt[t] * H + c]);
        ln_ref(v, g.data(), b.data(), 1e-12);
        for (int c = 0; c < H; ++c) err = std::max(err, std::abs(v[c] - F(out[(size_t)t * H + c])) / std::max(1.0, std::abs(v[c])));
    }
    if (!out.fences_ok()) err = 1.0;
    char nm[128]; snprintf(nm, 128, "embed_layernorm T=%d H=%d block=%u grid=%u%s", T, H, block, grid, off ? " half2" : ""); report(nm, err, 1e-3);
}

void test_ln(int rows, int H, unsigned block, unsigned grid, bool inplace, int off = 0) {
    auto x = rand_h((size_t)rows * H, 3.f), bias = rand_h(H), res = rand_h((size_t)rows * H, 2.f, 5.f), g = rand_h(H, .2f, 1.f), b = rand_h(H, .2f);
    Fenced dx(x, off), dbias(bias, off), dres(res, off), dg(g, off), db(b, off);
    Fenced outbuf(std::vector<__half>((size_t)rows * H, __float2half(-777.f)), off);
    Fenced& out = inplace ? dres : outbuf;
    launch(grid, block, [&] { add_bias_residual_layernorm_f16(dx.p(), dbias.p(), dres.p(), dg.p(), db.p(), out.p(), rows, H, 1e-5f); });
    double err = 0;
    for (int r = 0; r < rows; ++r) {
        std::vector<double> v(H);
        for (int c = 0; c < H; ++c) v[c] = (double)F(x[(size_t)r * H + c]) + F(bias[c]) + F(res[(size_t)r * H + c]);
        ln_ref(v, g.data(), b.data(), 1e-5);
        for (int c = 0; c < H; ++c) err = std::max(err, std::abs(v[c] - F(out[(size_t)r * H + c])) / std::max(1.0, std::abs(v[c])));
    }
    if (!out.fences_ok()) err = 1.0;
    char nm[128]; snprintf(nm, 128, "add_bias_residual_layernorm rows=%d H=%d b=%u g=%u%s%s", rows, H, block, grid, inplace ? " inplace" : "", off ? " half2" : ""); report(nm, err, 1e-3);
}

// layernorm_f16: LayerNorm of x alone (what XENC_RESIDUAL=gemm leaves after the GEMM added bias and residual).
void test_ln1(int rows, int H, unsigned block, unsigned grid, bool inplace, int off = 0) {
    auto x = rand_h((size_t)rows * H, 3.f, 2.f), g = rand_h(H, .2f, 1.f), b = rand_h(H, .2f);
    Fenced dx(x, off), dg(g, off), db(b, off);
    Fenced outbuf(std::vector<__half>((size_t)rows * H, __float2half(-777.f)), off);
    Fenced& out = inplace ? dx : outbuf;
    launch(grid, block, [&] { layernorm_f16(dx.p(), dg.p(), db.p(), out.p(), rows, H, 1e-5f); });
    double err = 0;
    for (int r = 0; r < rows; ++r) {
        std::vector<double> v(H);
        for (int c = 0; c < H; ++c) v[c] = (double)F(x[(size_t)r * H + c]);
        ln_ref(v, g.data(), b.data(), 1e-5);
        for (int c = 0; c < H; ++c) err = std::max(err, std::abs(v[c] - F(out[(size_t)r * H + c])) / std::max(1.0, std::abs(v[c])));
    }
    if (!out.fences_ok()) err = 1.0;
    char nm[128]; snprintf(nm, 128, "layernorm rows=%d H=%d b=%u g=%u%s%s", rows, H, block, grid, inplace ? " inplace" : "", off ? " half2" : ""); report(nm, err, 1e-3);
}

// Also exact: each element must be gelu_erf(x + b) of common.cuh rounded once to fp16 (the kernel's
// contract since v1), so a change of work split cannot change a bit.
void test_gelu(int rows, int N, unsigned block, unsigned grid, int off = 0) {
    auto x0 = rand_h((size_t)rows * N, 2.f), bias = rand_h(N);
    Fenced x(x0, off), db(bias, off);
    launch(grid, block, [&] { bias_gelu_f16(x.p(), db.p(), rows, N); });
    double err = 0;
    size_t inexact = 0;
    for (int r = 0; r < rows; ++r) for (int c = 0; c < N; ++c) {
        const size_t i = (size_t)r * N + c;
        double v = (double)F(x0[i]) + F(bias[c]);
        double ref = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
        err = std::max(err, std::abs(ref - F(x[i])) / std::max(1.0, std::abs(ref)));
        const __half want = __float2half(gelu_erf(F(x0[i]) + F(bias[c])));
        if (std::memcmp(&want, &x.store[x.at + i], sizeof(__half)) != 0) ++inexact;
    }
    if (!x.fences_ok() || inexact) err = 1.0;
    char nm[160]; snprintf(nm, 160, "bias_gelu rows=%d N=%d b=%u g=%u%s (%zu not bit-exact)", rows, N, block, grid, off ? " half2" : "", inexact); report(nm, err, 1e-3);
}

void test_gather(int nsrc, int n, int H, unsigned block, unsigned grid) {
    auto src = rand_h((size_t)nsrc * H); std::vector<int> rows(n); for (auto& r : rows) r = rng() % nsrc;
    std::vector<__half> dst((size_t)n * H);
    launch(grid, block, [&] { gather_rows_f16(src.data(), rows.data(), dst.data(), n, H); });
    double err = 0;
    for (int i = 0; i < n; ++i) for (int c = 0; c < H; ++c) err = std::max(err, (double)std::abs(F(dst[(size_t)i * H + c]) - F(src[(size_t)rows[i] * H + c])));
    char nm[128]; snprintf(nm, 128, "gather_rows n=%d H=%d b=%u g=%u", n, H, block, grid); report(nm, err, 0);
}

// v4: pooler_classifier_v4_f16 (the A/B candidate) instead of pooler_classifier_f16.
void test_pool(int n, int H, int L, unsigned block, unsigned grid, bool v4 = false) {
    auto x = rand_h((size_t)n * H), wp = rand_h((size_t)H * H, 0.05f), bp = rand_h(H, 0.1f), wc = rand_h((size_t)L * H, 0.1f), bc = rand_h(L);
    std::vector<float> logits((size_t)n * L, -777.f);
    launch(grid, block, [&] {
        if (v4) pooler_classifier_v4_f16(x.data(), wp.data(), bp.data(), wc.data(), bc.data(), logits.data(), n, H, L);
        else pooler_classifier_f16(x.data(), wp.data(), bp.data(), wc.data(), bc.data(), logits.data(), n, H, L);
    });
    double err = 0;
    for (int p = 0; p < n; ++p) {
        std::vector<double> pooled(H);
        for (int j = 0; j < H; ++j) { double a = F(bp[j]); for (int k = 0; k < H; ++k) a += (double)F(wp[(size_t)j * H + k]) * F(x[(size_t)p * H + k]); pooled[j] = std::tanh(a); }
        for (int l = 0; l < L; ++l) { double a = F(bc[l]); for (int j = 0; j < H; ++j) a += (double)F(wc[(size_t)l * H + j]) * pooled[j]; err = std::max(err, std::abs(a - logits[(size_t)p * L + l])); }
    }
    char nm[128]; snprintf(nm, 128, "pooler_classifier%s n=%d H=%d L=%d b=%u g=%u", v4 ? "_v4" : "", n, H, L, block, grid); report(nm, err, 1e-4);
}

void test_attn(int D, std::vector<int> lens, int heads, bool cls_only, float qk_scale, bool random_tiles = false) {
    int n = lens.size(); std::vector<int> cu(n + 1, 0); for (int i = 0; i < n; ++i) cu[i + 1] = cu[i] + lens[i];
    int T = cu[n], H = heads * D;
    auto qkv = rand_h((size_t)T * 3 * H, qk_scale);
    std::vector<int> outoff(n); std::vector<int4> work;
    for (int p = 0; p < n; ++p) {
        outoff[p] = cls_only ? p : cu[p];
        for (int h = 0; h < heads; ++h) {
            if (cls_only) { work.push_back({p, h, 0, 1}); continue; }
            for (int q0 = 0; q0 < lens[p];) { int step = random_tiles ? 1 + rng() % ATTN_Q_TILE : ATTN_Q_TILE; work.push_back({p, h, q0, std::min(lens[p], q0 + step)}); q0 += step; }
        }
    }
    std::shuffle(work.begin(), work.end(), rng);
    int out_rows = cls_only ? n : T;
    std::vector<__half> ctx((size_t)out_rows * H, __float2half(-777.f));
    float scale = 1.0f / std::sqrt((float)D);
    unsigned grid = work.size() + 3;  // extra blocks must be no-ops
    launch(grid, ATTN_THREADS, [&] {
        if (D == 32) attention_varlen_hd32_f16(qkv.data(), ctx.data(), cu.data(), outoff.data(), work.data(), (int)work.size(), heads, scale);
        else attention_varlen_hd64_f16(qkv.data(), ctx.data(), cu.data(), outoff.data(), work.data(), (int)work.size(), heads, scale);
    });
    double err = 0;
    for (int p = 0; p < n; ++p) for (int h = 0; h < heads; ++h) for (int q = 0; q < (cls_only ? 1 : lens[p]); ++q) {
        const __half* qr = &qkv[(size_t)(cu[p] + q) * 3 * H + h * D];
        std::vector<double> s(lens[p]); double mx = -1e300;
        for (int k = 0; k < lens[p]; ++k) { const __half* kr = &qkv[(size_t)(cu[p] + k) * 3 * H + H + h * D]; double d = 0; for (int i = 0; i < D; ++i) d += (double)F(qr[i]) * F(kr[i]); s[k] = d * scale; mx = std::max(mx, s[k]); }
        double sum = 0; for (auto& v : s) { v = std::exp(v - mx); sum += v; }
        for (int i = 0; i < D; ++i) {
            double o = 0; for (int k = 0; k < lens[p]; ++k) o += s[k] * F(qkv[(size_t)(cu[p] + k) * 3 * H + 2 * H + h * D + i]);
            o /= sum;
            err = std::max(err, std::abs(o - F(ctx[(size_t)(outoff[p] + q) * H + h * D + i])) / std::max(1.0, std::abs(o)));
        }
    }
    int bad = 0; for (auto& c : ctx) if (F(c) == -777.f) ++bad;  // every output element written exactly by design
    char nm[160]; snprintf(nm, 160, "attention hd%d n=%d T=%d heads=%d %s qk_scale=%g unwritten=%d", D, n, T, heads, cls_only ? "CLS" : "full", qk_scale, bad);
    report(nm, bad ? 1.0 : err, 2e-3);
}

int main() {
    // LayerNorms. 16-byte layout (H % 8 == 0, H <= 512, 16-byte aligned): L lanes per row, 32 / L rows per
    // warp, next row prefetched; grids smaller than the work make warps loop. half2 layout otherwise.
    test_embed(5, 384, 128, 5); test_embed(7, 1024, 32, 3); test_embed(3, 2, 32, 3); test_embed(4, 770, 256, 2); test_embed(41, 384, 128, 2);
    test_embed(41, 384, 128, 2, 2); test_embed(45, 128, 64, 1); test_embed(70, 8, 32, 1); test_embed(9, 24, 32, 2); test_embed(13, 512, 64, 1); test_embed(6, 520, 64, 2);
    test_ln(6, 384, 128, 6, false); test_ln(6, 384, 128, 2, true); test_ln(3, 1024, 1024, 3, true); test_ln(5, 1022, 32, 7, false); test_ln(37, 384, 128, 3, true); test_ln(9, 312, 64, 1, false);
    test_ln(37, 384, 128, 3, true, 2); test_ln(9, 312, 64, 1, false, 2); test_ln(37, 128, 64, 1, true); test_ln(50, 256, 128, 2, false); test_ln(67, 16, 32, 1, true);
    test_ln(11, 24, 64, 1, false); test_ln(10, 512, 96, 1, true); test_ln(7, 768, 64, 2, true); test_ln(300, 384, 128, 4, true);
    test_ln1(6, 384, 128, 2, true); test_ln1(37, 384, 128, 3, false); test_ln1(300, 384, 128, 4, true); test_ln1(9, 312, 64, 1, false);
    test_ln1(37, 384, 128, 3, true, 2); test_ln1(7, 768, 64, 2, true); test_ln1(5, 1022, 32, 7, false); test_ln1(67, 16, 32, 1, true);
    // bias_gelu: 16-byte and half2 vectors; fewer threads than columns, idle threads past the last whole set
    // of columns, odd row counts (the single-row tail), misaligned pointers.
    test_gelu(7, 1536, 256, 3); test_gelu(3, 6, 64, 100); test_gelu(5, 40, 32, 2); test_gelu(4, 1530, 64, 3);
    test_gelu(33, 1536, 32, 1); test_gelu(50, 64, 64, 1); test_gelu(9, 1536, 64, 5, 2); test_gelu(11, 56, 64, 1); test_gelu(20, 24, 96, 1); test_gelu(40, 1536, 256, 4);
    test_gather(20, 9, 384, 128, 4); test_gather(5, 3, 2, 32, 1);
    for (bool v4 : {false, true}) {
        test_pool(3, 384, 1, 256, 2, v4); test_pool(4, 66, 3, 64, 4, v4); test_pool(2, 1024, 2, 1024, 1, v4);
        test_pool(9, 384, 1, 1024, 1, v4); test_pool(13, 384, 2, 256, 4, v4); test_pool(143, 384, 1, 1024, 36, v4);
        test_pool(5, 1536, 1, 128, 2, v4);
    }
    std::vector<int> lens = {1, 2, 63, 64, 65, 127, 128, 129, 200, 17};
    for (int D : {32, 64}) {
        test_attn(D, lens, 2, false, 1.f); test_attn(D, lens, 3, true, 1.f);
        test_attn(D, {512, 1, 300, 511}, 1, false, 4.f); test_attn(D, {512, 5, 77}, 2, true, 4.f); test_attn(D, {300, 1, 64, 129}, 2, false, 2.f, true);
    }
    // Long inputs (RoBERTa / XLM-R up to 8,192 positions): past 2,048 keys in full, 8,192 for [CLS] only.
    test_attn(64, {2100, 5}, 1, false, 1.f); test_attn(64, {8192, 3}, 2, true, 1.f);
    printf("%s (%d failures)\n", fails ? "FAILED" : "ALL OK", fails);
    return fails != 0;
}
