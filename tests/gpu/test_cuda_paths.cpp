// CUDA fast paths against their CPU / float64 twins. Skipped (not passed) on machines without a GPU;
// run on the GPU machine by `PHASES="build test" scripts/gpu_session.sh` (ctest -L gpu).
#include "core/safetensors.h"
#include "model/model_io.h"
#include "ops/rope.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

#define REQUIRE_CUDA() \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

TEST(CudaPaths, RopeKernelMatchesFloat64Reference) {
    REQUIRE_CUDA();
    for (auto grid : {TokenGrid{3, 5, 7}, TokenGrid{1, 1, 1}, TokenGrid{21, 30, 52}}) {
        const int64_t L = grid.tokens();
        auto x = torch::randn({2, L, 3, 128});
        auto ref = rope_apply(x, rope_tables(128, grid, torch::kFloat64, torch::kCPU), AttentionImpl::Reference);
        auto tc = rope_tables(128, grid, torch::kFloat32, torch::kCUDA);
        auto fast = rope_apply(x.cuda(), tc, AttentionImpl::Fast).cpu();
        EXPECT_LE(rel_error(fast, ref), 1e-6) << L;
    }
}

TEST(CudaPaths, GoldenForwardOnCudaFp32AndBf16) {
    REQUIRE_CUDA();
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto in = load_safetensors(golden("dit_forward.safetensors"));
    torch::NoGradGuard ng;
    for (auto impl : {AttentionImpl::Fast, AttentionImpl::Reference}) {
        auto m = load_wan_model(golden("wan-t2v-tiny"), torch::kCUDA).model;
        m->set_attention_impl(impl);
        auto v = m->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context")).cpu();
        // TF32 may be used by cuBLAS for fp32 GEMMs: allow 1e-3 (tf32 operands have 10 mantissa bits).
        EXPECT_LE(rel_error(v, in.at("out.velocity_official")), 1e-3) << to_string(impl);
    }
    auto m = load_wan_model(golden("wan-t2v-tiny"), torch::kCUDA, Precision::BFloat16).model;
    auto v = m->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context")).cpu();
    EXPECT_LE(rel_error(v, in.at("out.velocity_official")), kBf16RelTol);
}

TEST(CudaPaths, RopeKernelGradientMatchesReference) {
    REQUIRE_CUDA();
    const TokenGrid grid{3, 5, 7};
    auto x = torch::randn({2, grid.tokens(), 3, 64});
    auto w = torch::randn({2, grid.tokens(), 3, 64});
    auto xr = x.clone().set_requires_grad(true);
    (rope_apply(xr, rope_tables(64, grid, torch::kFloat64, torch::kCPU), AttentionImpl::Reference) * w).sum().backward();
    auto xf = x.cuda().set_requires_grad(true);
    (rope_apply(xf, rope_tables(64, grid, torch::kFloat32, torch::kCUDA), AttentionImpl::Fast) * w.cuda()).sum().backward();
    ASSERT_TRUE(xf.grad().defined());
    EXPECT_LE(rel_error(xf.grad().cpu(), xr.grad()), 1e-6);
}

TEST(CudaPaths, EveryParameterReceivesGradientInBf16Training) {
    REQUIRE_CUDA();
  for (auto precision : {Precision::BFloat16, Precision::BFloat16Lean}) {
    SCOPED_TRACE(to_string(precision));
    WanConfig c;
    c.dim = 32, c.ffn_dim = 64, c.num_heads = 2, c.num_layers = 2, c.in_dim = 3, c.out_dim = 3, c.text_dim = 8;
    c.freq_dim = 16, c.text_len = 4, c.patch_size = {1, 4, 4};
    WanModel m(c);
    m->to(torch::kCUDA);
    m->set_precision(precision, /*cast_weights=*/false);
    auto v = m->forward(torch::randn({2, 3, 2, 8, 8}).cuda(), torch::tensor({100.0, 700.0}).cuda(), torch::randn({2, 4, 8}).cuda());
    v.pow(2).mean().backward();
    for (const auto& p : m->named_parameters()) {
        if (p.key() == "head.head.weight" || p.key() == "head.head.bias") continue;
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
        EXPECT_EQ(p.value().grad().scalar_type(), torch::kFloat32) << p.key();  // fp32 master weights
    }
  }
}
