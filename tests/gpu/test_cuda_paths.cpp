// CUDA fast paths against their CPU / float64 twins. Skipped (not passed) on machines without a GPU;
// run on the H200 by scripts/gpu_bench.sh (ctest -L gpu).
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
