// The fused DiT block path (ops/dit_ops.h) on the CPU: its twins against float64 formulas with derived bounds,
// the block path through the twins bit-identical to the composite path, the GELU epilogue call, the switch.
// The CUDA kernels against these twins: tests/gpu/test_dit_kernels.cpp.
#include "core/safetensors.h"
#include "model/model_io.h"
#include "ops/dit_ops.h"
#include "ops/rope.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;
using torch::Tensor;

namespace {

Tensor f64(const Tensor& t) { return t.to(torch::kCPU, torch::kFloat64); }

// Restores the process-wide fusion setting at scope exit.
struct FusionScope {
    ops::DitFusion saved = ops::dit_fusion();
    explicit FusionScope(const ops::DitFusion& f) { ops::set_dit_fusion(f); }
    ~FusionScope() { ops::set_dit_fusion(saved); }
};

Tensor golden_forward(const ops::DitFusion& f, const ActivationTap* tap = nullptr) {
    FusionScope scope(f);
    auto in = load_safetensors(golden("dit_forward.safetensors"));
    auto m = load_wan_model(golden("wan-t2v-tiny"), torch::kCPU, Precision::BFloat16).model;
    torch::NoGradGuard ng;
    return m->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context"), tap);
}
}  // namespace

TEST(DitFused, SwitchParsesAllNoneAndLists) {
    EXPECT_EQ(ops::to_string(ops::parse_dit_fusion("all")), "all");
    EXPECT_EQ(ops::to_string(ops::parse_dit_fusion("none")), "none");
    auto f = ops::parse_dit_fusion("norm,gelu");
    EXPECT_TRUE(f.norm && f.gelu && !f.qk);
    EXPECT_EQ(ops::to_string(f), "norm,gelu");
    EXPECT_NE(error_of([] { ops::parse_dit_fusion("norm,fast"); }).find("unknown fused part 'fast'"), std::string::npos);
}

// The twin: x' = x + gate*y in fp32 and LayerNorm/modulation in fp32, one bf16 rounding at the end (two when the
// LayerNorm input is bf16). Against float64: half a bf16 ulp of the value per rounding (<= 2^-8 |v| for the final
// one, 2^-8 |n| (1+s) for the intermediate), plus the fp32 error of the statistics, bounded by gamma_(C+16) times
// the magnitude (|n| |w| + |b|) |1 + s| + |shift| (Higham's bound for sums of C terms and a few products).
TEST(DitFused, NormModulateTwinMatchesFloat64) {
    torch::manual_seed(3);
    for (auto [B, L, C] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 2}, {2, 5, 7}, {2, 9, 96}, {1, 4, 1536}}) {
        for (int variant = 0; variant < 4; ++variant) {
            SCOPED_TRACE(std::to_string(B) + "x" + std::to_string(L) + "x" + std::to_string(C) + " variant " + std::to_string(variant));
            const bool bf16_x = variant == 3;  // the first block: bf16 stream, no residual input
            auto x = torch::randn({B, L, C}) * 3 + 0.5;
            if (bf16_x) x = x.to(torch::kBFloat16);
            Tensor y, gate, w, b, scale, shift;
            if (variant == 1 || variant == 2) y = torch::randn({B, L, C}).to(torch::kBFloat16);
            if (variant == 1) gate = torch::randn({B, C});
            if (variant == 2) w = torch::randn({C}), b = torch::randn({C});
            if (variant != 2) scale = torch::randn({B, C}) * 0.5, shift = torch::randn({B, C});
            auto out = ops::norm_modulate(x, y, gate, w, b, scale, shift, 1e-6, AttentionImpl::Reference);
            ASSERT_EQ(out.h.scalar_type(), torch::kBFloat16);
            ASSERT_EQ(out.x.scalar_type(), torch::kFloat32);
            // float64 formula
            auto s = f64(x);
            if (y.defined()) s = s + (gate.defined() ? f64(gate).unsqueeze(1) : torch::ones({1}, torch::kFloat64)) * f64(y);
            EXPECT_LE((f64(out.x) - s).abs().max().item<double>(), 4 * kF32Unit * (s.abs().max().item<double>() + 1));
            auto mean = s.mean(-1, true), var = (s - mean).pow(2).mean(-1, true);
            auto n = (s - mean) / (var + 1e-6).sqrt();
            if (w.defined()) n = n * f64(w) + f64(b);
            auto one_s = scale.defined() ? 1 + f64(scale).unsqueeze(1) : torch::ones({1}, torch::kFloat64);
            auto sh = shift.defined() ? f64(shift).unsqueeze(1) : torch::zeros({1}, torch::kFloat64);
            auto ref = n * one_s + sh;
            auto mag = n.abs() * one_s.abs() + sh.abs() + (w.defined() ? f64(b).abs() : torch::zeros({1}, torch::kFloat64));
            const double gamma = (C + 16) * kF32Unit / (1 - (C + 16) * kF32Unit);
            auto tol = ref.abs() / 256 + 2 * gamma * mag * 4 + 1e-30;
            if (bf16_x) tol = tol + n.abs() * one_s.abs() / 256;
            auto excess = (f64(out.h) - ref).abs() - tol;
            EXPECT_LE(excess.max().item<double>(), 0.0);
        }
    }
}

// The twin: fp32 statistics, a bf16 rounding of the normalised value, the fp32 weight, RoPE (float64 on the CPU),
// a final bf16 rounding. Per output element o of the pair (n0 w0, n1 w1): |o| <= m = |n0 w0| + |n1 w1|, the
// intermediate rounding moves each of n0, n1 by <= 2^-8 relative, the final one by <= 2^-8 |o|; so <= 2^-7 m
// plus gamma_(C+8) m for the fp32 statistics.
TEST(DitFused, RmsNormRopeTwinMatchesFloat64AndKeepsLayout) {
    torch::manual_seed(5);
    for (auto [B, F, Hs, W, H, D] : {std::array<int64_t, 6>{1, 1, 1, 1, 1, 2}, {2, 2, 3, 5, 3, 8}, {1, 3, 2, 4, 2, 64}}) {
        const TokenGrid grid{F, Hs, W};
        const int64_t L = grid.tokens(), C = H * D;
        auto x = (torch::randn({B, L, C}) * 2).to(torch::kBFloat16);
        auto weight = torch::randn({C});
        auto tables = rope_tables(D, grid, torch::kFloat64, torch::kCPU);
        for (bool rope : {false, true})
            for (bool head_major : {false, true}) {
                SCOPED_TRACE("L " + std::to_string(L) + " C " + std::to_string(C) + (rope ? " rope" : "") + (head_major ? " head-major" : ""));
                Tensor c = rope ? tables.cos : Tensor(), s = rope ? tables.sin : Tensor();
                auto out = ops::rms_norm_rope(x, weight, c, s, H, 1e-6, head_major, AttentionImpl::Reference);
                ASSERT_EQ(out.sizes(), (std::vector<int64_t>{B, L, H, D}));
                ASSERT_EQ(out.scalar_type(), torch::kBFloat16);
                if (H > 1 && L > 1) {  // otherwise both layouts are the same memory order
                    EXPECT_EQ(out.transpose(1, 2).is_contiguous(), head_major);
                    EXPECT_EQ(out.is_contiguous(), !head_major);
                }
                auto xd = f64(x);
                auto n = (xd / (xd.pow(2).mean(-1, true) + 1e-6).sqrt() * f64(weight)).view({B, L, H, D / 2, 2});
                auto n0 = n.select(-1, 0), n1 = n.select(-1, 1);
                Tensor o0 = n0, o1 = n1;
                if (rope) {
                    auto cd = f64(tables.cos).view({1, L, 1, D / 2}), sd = f64(tables.sin).view({1, L, 1, D / 2});
                    o0 = n0 * cd - n1 * sd, o1 = n0 * sd + n1 * cd;
                }
                auto ref = torch::stack({o0, o1}, -1).view({B, L, H, D});
                auto m = (n0.abs() + n1.abs()).unsqueeze(-1).expand({B, L, H, D / 2, 2}).reshape({B, L, H, D});
                const double gamma = (C + 8) * kF32Unit / (1 - (C + 8) * kF32Unit);
                auto excess = (f64(out) - ref).abs() - m * (1.0 / 128 + gamma);
                EXPECT_LE(excess.max().item<double>(), 0.0);
            }
    }
}

// On the CPU the Fast GELU path is the twin itself: at::_addmm_activation there applies the erf GELU (measured
// 1.7e-4 away from tanh), so only CUDA takes the epilogue (tests/gpu/test_dit_kernels.cpp checks it).
TEST(DitFused, LinearGeluOnCpuIsTheTanhTwin) {
    torch::manual_seed(7);
    for (auto [M, K, N] : {std::array<int64_t, 3>{1, 1, 2}, {7, 33, 5}}) {
        auto x = torch::randn({2, M, K}), w = torch::randn({N, K}), b = torch::randn({N});
        auto fast = ops::linear_gelu_tanh(x, w, b, AttentionImpl::Fast);
        auto ref = torch::nn::functional::gelu(torch::nn::functional::linear(x, w, b),
                                               torch::nn::functional::GELUFuncOptions().approximate("tanh"));
        EXPECT_TRUE(torch::equal(fast, ref));
    }
}

// With every part on but no CUDA, the fused block path runs the twins: bit-identical to the composite path,
// with and without an observer (which switches q/k to token-major).
TEST(DitFused, BlockPathThroughTwinsIsBitIdenticalOnCpu) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    ops::DitFusion off = ops::parse_dit_fusion("none");
    ops::DitFusion twins = ops::parse_dit_fusion("norm,qk");  // gelu off: its CPU call rounds differently
    twins.cpu = true;
    auto base = golden_forward(off);
    EXPECT_TRUE(torch::equal(golden_forward(twins), base));
    std::map<std::string, Tensor> a, b;
    ActivationTap ta = [&](const std::string& n, const Tensor& t) { a[n] = t.clone(); };
    ActivationTap tb = [&](const std::string& n, const Tensor& t) { b[n] = t.clone(); };
    EXPECT_TRUE(torch::equal(golden_forward(twins, &ta), base));
    golden_forward(off, &tb);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [n, t] : b) {
        ASSERT_TRUE(a.count(n)) << n;
        EXPECT_TRUE(torch::equal(a.at(n), t)) << n;
    }
}

TEST(DitFused, AllPartsOnCpuWithinBf16Tolerance) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto ref = load_safetensors(golden("dit_forward.safetensors"));
    ops::DitFusion all;
    all.cpu = true;
    auto v = golden_forward(all);
    EXPECT_LE(rel_error(v, ref.at("out.velocity_official")), kBf16RelTol);
    EXPECT_LE(rel_error(v, golden_forward(ops::parse_dit_fusion("none"))), kBf16RelTol);
}
