// The fused DiT-block kernels (kernels/dit_kernels.cu) and the GELU epilogue against their twins (ops/dit_ops.h,
// Reference) on the same CUDA inputs, over random and awkward shapes (C = 1, odd C, C not a multiple of the
// block, C = 8192 the kernel's limit and 8194 beyond it (the twin), strided rows, bf16 and fp32 streams, B = 2), then the
// whole bf16 forward with each part on against the composite path. Skipped without a GPU.
// Run: ctest --test-dir build-gpu -L gpu -R DitKernels
#include "core/safetensors.h"
#include "model/model_io.h"
#include "ops/dit_ops.h"
#include "ops/rope.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;
using torch::Tensor;

#define REQUIRE_CUDA() \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

namespace {
Tensor f64(const Tensor& t) { return t.to(torch::kCPU, torch::kFloat64); }
Tensor cuda(const Tensor& t) { return t.to(torch::kCUDA); }
double gamma_n(int64_t n) { return n * kF32Unit / (1 - n * kF32Unit); }

struct FusionScope {
    ops::DitFusion saved = ops::dit_fusion();
    explicit FusionScope(const ops::DitFusion& f) { ops::set_dit_fusion(f); }
    ~FusionScope() { ops::set_dit_fusion(saved); }
};
}  // namespace

// Kernel vs twin, both fp32 math then one bf16 rounding: they differ by at most one bf16 ulp of the value
// (<= 2^-7 |v|) where their fp32 results straddle a rounding boundary, plus the fp32 difference of the statistics
// (summation order: 2 gamma_(C+16) of the magnitude); with a bf16 stream the intermediate rounding adds one ulp of
// |n| |1 + s|. x' (fp32) differs by at most one fused multiply-add's rounding: 2 u (|x| + |gate y|).
TEST(DitKernels, NormModulateMatchesTwin) {
    REQUIRE_CUDA();
    torch::NoGradGuard ng;
    torch::manual_seed(11);
    for (auto [B, L, C] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {2, 5, 7}, {2, 33, 257}, {1, 70, 1536},
                           {2, 3, 5120}, {1, 2, 8192}, {1, 2, 8194}}) {
        for (int variant = 0; variant < 5; ++variant) {
            SCOPED_TRACE(std::to_string(B) + "x" + std::to_string(L) + "x" + std::to_string(C) + " variant " + std::to_string(variant));
            auto x = cuda(torch::randn({B, L, C}) * 3 + 0.5);
            if (variant == 3) x = x.to(torch::kBFloat16);                                     // first block
            if (variant == 4) x = cuda(torch::randn({B, C, L})).transpose(1, 2);              // strided stream
            Tensor y, gate, w, b, scale, shift;
            if (variant == 1 || variant == 2 || variant == 4) y = cuda(torch::randn({B, L, C})).to(torch::kBFloat16);
            if (variant == 1 || variant == 4) gate = cuda(torch::randn({B, C}));
            if (variant == 2) w = cuda(torch::randn({C})), b = cuda(torch::randn({C}));
            if (variant != 2) scale = cuda(torch::randn({B, C}) * 0.5), shift = cuda(torch::randn({B, C}));
            auto fast = ops::norm_modulate(x, y, gate, w, b, scale, shift, 1e-6, AttentionImpl::Fast);
            auto ref = ops::norm_modulate(x, y, gate, w, b, scale, shift, 1e-6, AttentionImpl::Reference);
            ASSERT_TRUE(fast.h.is_cuda());
            ASSERT_EQ(fast.h.scalar_type(), torch::kBFloat16);
            ASSERT_EQ(fast.x.scalar_type(), torch::kFloat32);
            auto gy = y.defined() ? (gate.defined() ? f64(gate).unsqueeze(1) : torch::ones({1}, torch::kFloat64)) * f64(y)
                                  : torch::zeros({1}, torch::kFloat64);
            auto xtol = (f64(x).abs() + gy.abs()) * 2 * kF32Unit;
            EXPECT_LE(((f64(fast.x) - f64(ref.x)).abs() - xtol).max().item<double>(), 0.0);
            // Magnitudes from float64 (the twin's LayerNorm output before modulation).
            auto s = f64(ref.x), mean = s.mean(-1, true), var = (s - mean).pow(2).mean(-1, true);
            auto n = (s - mean) / (var + 1e-6).sqrt();
            if (w.defined()) n = n.abs() * f64(w).abs() + f64(b).abs();
            auto one_s = scale.defined() ? (1 + f64(scale).unsqueeze(1)).abs() : torch::ones({1}, torch::kFloat64);
            auto mag = n.abs() * one_s + (shift.defined() ? f64(shift).unsqueeze(1).abs() : torch::zeros({1}, torch::kFloat64));
            auto hr = f64(ref.h);
            auto tol = hr.abs() / 128 + mag * (2 * gamma_n(C + 16)) * 4 + 1e-30;
            if (variant == 3) tol = tol + n.abs() * one_s / 128;
            EXPECT_LE(((f64(fast.h) - hr).abs() - tol).max().item<double>(), 0.0);
        }
    }
}

// Kernel vs twin (the fp32 RoPE kernel on CUDA): per element of a pair (n0 w0, n1 w1) with m = |n0 w0| + |n1 w1|,
// the intermediate bf16 rounding of each of n0, n1 may land one ulp apart (2^-7 m together) and so may the final
// rounding (2^-7 m), plus the fp32 statistics (gamma_(C+8) m).
TEST(DitKernels, RmsNormRopeMatchesTwinInBothLayouts) {
    REQUIRE_CUDA();
    torch::NoGradGuard ng;
    torch::manual_seed(13);
    struct S { int64_t B, F, Hs, W, H, D; };
    for (auto sh : {S{1, 1, 1, 1, 1, 2}, S{2, 2, 3, 5, 3, 8}, S{2, 3, 5, 7, 12, 128}, S{1, 2, 3, 4, 40, 128},
                    S{1, 1, 2, 3, 96, 128}, S{2, 21, 3, 5, 12, 128}}) {
        const TokenGrid grid{sh.F, sh.Hs, sh.W};
        const int64_t B = sh.B, L = grid.tokens(), H = sh.H, D = sh.D, C = H * D;
        auto tables = rope_tables(D, grid, torch::kFloat32, torch::kCUDA);
        auto weight = cuda(torch::randn({C}));
        // Rows of a wider GEMM output (the middle third of [B, L, 3C]) and a plain contiguous tensor.
        auto wide = cuda(torch::randn({B, L, 3 * C}) * 2).to(torch::kBFloat16);
        for (bool strided : {false, true}) {
            auto x = strided ? wide.narrow(2, C, C) : wide.narrow(2, C, C).contiguous();
            for (bool rope : {false, true})
                for (bool head_major : {false, true}) {
                    SCOPED_TRACE("L " + std::to_string(L) + " C " + std::to_string(C) + (strided ? " strided" : "") +
                                 (rope ? " rope" : "") + (head_major ? " head-major" : ""));
                    Tensor c = rope ? tables.cos : Tensor(), s = rope ? tables.sin : Tensor();
                    auto fast = ops::rms_norm_rope(x, weight, c, s, H, 1e-6, head_major, AttentionImpl::Fast);
                    auto ref = ops::rms_norm_rope(x, weight, c, s, H, 1e-6, head_major, AttentionImpl::Reference);
                    ASSERT_EQ(fast.sizes(), ref.sizes());
                    ASSERT_EQ(fast.strides(), ref.strides());
                    auto xd = f64(x);
                    auto n = (xd / (xd.pow(2).mean(-1, true) + 1e-6).sqrt() * f64(weight)).abs().view({B, L, H, D / 2, 2});
                    auto m = n.sum(-1, true).expand({B, L, H, D / 2, 2}).reshape({B, L, H, D});
                    auto excess = (f64(fast) - f64(ref)).abs() - m * (2.0 / 128 + gamma_n(C + 8));
                    EXPECT_LE(excess.max().item<double>(), 0.0);
                }
        }
    }
}

// cuBLASLt's GELU_BIAS epilogue (tanh GELU on the fp32 accumulator, one rounding) against linear -> bf16 ->
// GELU(tanh) -> bf16: the twin's extra rounding of z moves GELU by <= 1.13 * 2^-8 |z| (GELU' <= 1.13), the final
// roundings may land one ulp apart (2^-7 |out|), and the two GEMMs may sum in different orders (fp32:
// gamma_K sum_k |x_k w_k|, times 1.13).
TEST(DitKernels, GeluEpilogueMatchesTwin) {
    REQUIRE_CUDA();
    torch::NoGradGuard ng;
    torch::manual_seed(17);
    for (auto [M, K, N] : {std::array<int64_t, 3>{1, 8, 16}, {7, 33, 6}, {333, 1536, 8960}, {64, 5120, 1000}}) {
        SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N));
        auto x = cuda(torch::randn({1, M, K})).to(torch::kBFloat16);
        auto w = cuda(torch::randn({N, K}) / std::sqrt(double(K))).to(torch::kBFloat16);
        auto b = cuda(torch::randn({N})).to(torch::kBFloat16);
        auto fast = f64(ops::linear_gelu_tanh(x, w, b, AttentionImpl::Fast));
        auto ref = f64(ops::linear_gelu_tanh(x, w, b, AttentionImpl::Reference));
        auto z = torch::matmul(f64(x), f64(w).t()) + f64(b);
        auto absdot = torch::matmul(f64(x).abs(), f64(w).abs().t()) + f64(b).abs();
        auto tol = ref.abs() / 128 + 1.13 * (z.abs() / 256 + absdot * 2 * gamma_n(K + 2)) + 1e-30;
        EXPECT_LE(((fast - ref).abs() - tol).max().item<double>(), 0.0);
    }
}

// The whole bf16 forward with every part on, each part alone, and with an observer (token-major q/k): against
// the composite path and the official fp32 output, within the stated bf16 tolerance.
TEST(DitKernels, GoldenForwardWithEachFusedPart) {
    REQUIRE_CUDA();
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto in = load_safetensors(golden("dit_forward.safetensors"));
    auto m = load_wan_model(golden("wan-t2v-tiny"), torch::kCUDA, Precision::BFloat16).model;
    torch::NoGradGuard ng;
    auto run = [&](const std::string& parts, const ActivationTap* tap = nullptr) {
        FusionScope scope(ops::parse_dit_fusion(parts));
        return m->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context"), tap).cpu();
    };
    auto base = run("none");
    for (const std::string parts : {"all", "norm", "qk", "gelu"}) {
        SCOPED_TRACE(parts);
        auto v = run(parts);
        EXPECT_LE(rel_error(v, in.at("out.velocity_official")), kBf16RelTol);
        EXPECT_LE(rel_error(v, base), kBf16RelTol);
    }
#ifdef SURGEON_HAVE_CUDA
    EXPECT_TRUE(ops::dit_kernels_available(torch::Device(torch::kCUDA))) << "the kernels would not run";
#endif
    ActivationTap tap = [](const std::string&, const Tensor&) {};
    EXPECT_LE(rel_error(run("all", &tap), run("all")), kBf16RelTol);
}

// Wan2.1-1.3B block shapes (12 heads x 128, FFN 8960), random weights, 2 blocks, an odd token grid, B = 2:
// fused against composite within the bf16 tolerance.
TEST(DitKernels, WanShapedForwardFusedMatchesComposite) {
    REQUIRE_CUDA();
    torch::NoGradGuard ng;
    torch::manual_seed(19);
    WanConfig c = wan_preset("wan2.1-t2v-1.3b");
    c.num_layers = 2;
    WanModel m(c);
    m->to(torch::kCUDA);
    m->set_precision(Precision::BFloat16);
    auto x = cuda(torch::randn({2, c.in_dim, 3, 10, 14}));
    auto t = cuda(torch::tensor({300.0, 900.0}));
    auto ctx = cuda(torch::randn({2, 77, c.text_dim}));
    Tensor base, fused;
    {
        FusionScope s(ops::parse_dit_fusion("none"));
        base = m->forward(x, t, ctx).cpu();
    }
    {
        FusionScope s(ops::parse_dit_fusion("all"));
        fused = m->forward(x, t, ctx).cpu();
    }
    EXPECT_TRUE(torch::isfinite(fused).all().item<bool>());
    EXPECT_LE(rel_error(fused, base), kBf16RelTol);
}
