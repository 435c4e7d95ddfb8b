// The inference fast path (attention/hybrid_inference.h: masked-value GEMM states, batched chunk SDPA, fused
// combine) equals the Reference twin on the CPU for every kind, in float32 (rounding-level) and in bf16 (bf16
// roundoff), over awkward shapes: N not divisible by R, T_c not dividing F, overlap > 0, B = 2, H = 3.
// The same code runs on CUDA with the kernels (tests/gpu/test_hybrid_cuda.cpp).
// Run: ctest --test-dir build -R 'HybridInference'
#include <torch/torch.h>

#include "attention/hybrid_attention.h"
#include "attention/hybrid_inference.h"
#include "ops/hybrid_ops.h"
#include "testing/attention_cases.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
using testing::rel_error;
using torch::Tensor;

using Shape = testing::AttentionShape;
using Inputs = testing::AttentionInputs;
const std::vector<Shape> kShapes = {{1, 3, 2, 3, 2, 8}, {2, 4, 3, 3, 2, 16}, {1, 1, 5, 7, 1, 8}, {2, 5, 2, 2, 3, 8},
                                    {2, 7, 3, 5, 3, 16}};

Inputs random_inputs(const Shape& s, uint64_t seed) {
    auto in = testing::random_attention_inputs(s, seed);
    in.ls = torch::randn({s.H}) * 2;
    return in;
}

std::vector<PlanEntry> entries_for(const Shape& s) { return testing::plan_entries_for(s, {1, 2, 3, 4, 7}, {0, 1, 2}); }

TEST(HybridInference, EqualsReferenceInFloat32ForEveryKind) {
    int n = 0;
    for (const auto& s : kShapes) {
        auto in = random_inputs(s, 7 + n);
        for (const auto& e : entries_for(s)) {
            for (bool scaled : {false, true}) {
                const Tensor ls = scaled ? in.ls : Tensor();
                auto ref = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), AttentionImpl::Reference, 7, ls);
                auto fast = detail::hybrid_inference(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), ls);
                ASSERT_EQ(fast.sizes(), in.q.sizes());
                EXPECT_EQ(fast.scalar_type(), torch::kFloat32);
                EXPECT_LE(rel_error(fast, ref), testing::kTwinRelTolF32)
                    << e.describe() << (scaled ? " log_scale" : "") << " B=" << s.B << " F=" << s.F << " N=" << s.N();
                ++n;
            }
        }
    }
    EXPECT_GT(n, 150);
}

TEST(HybridInference, EqualsReferenceInBf16) {
    // bf16 q, k, v, phi (what the model feeds the Fast path) against the float32 reference on the same bf16 values:
    // the states are accumulated in float32 but rounded to bf16 before they are applied, the SDPA output is bf16,
    // and y is written in bf16, so a few bf16 roundoffs (2^-9 each) -> kBf16RelTol.
    auto bf = [](const Tensor& t) { return t.to(torch::kBFloat16); };
    for (const auto& s : {kShapes[1], kShapes[3], kShapes[4]}) {
        auto in = random_inputs(s, 3);
        for (const auto& e : entries_for(s)) {
            auto ref = hybrid_attention(bf(in.q), bf(in.k), bf(in.v), bf(in.pq), bf(in.pk), e, s.grid(),
                                        AttentionImpl::Reference, 7, in.ls);
            auto fast = detail::hybrid_inference(bf(in.q), bf(in.k), bf(in.v), bf(in.pq), bf(in.pk), e, s.grid(), in.ls);
            EXPECT_EQ(fast.scalar_type(), torch::kBFloat16);
            EXPECT_LE(rel_error(fast.to(torch::kFloat32), ref), testing::kBf16RelTol) << e.describe() << " N=" << s.N();
        }
    }
}

TEST(HybridInference, QuerySubsetEqualsRowsOfTheReference) {
    const Shape s = kShapes[4];
    auto in = random_inputs(s, 11);
    auto idx = torch::tensor({0, 3, 4, 50, 51, 100, 104}, torch::kLong);  // N = 105
    for (const auto& e : entries_for(s)) {
        if (e.kind == AttentionKind::Chunked) continue;
        auto full = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), AttentionImpl::Reference, 64, in.ls);
        auto sub = detail::hybrid_inference(in.q.index_select(1, idx), in.k, in.v, in.pq.index_select(1, idx), in.pk, e,
                                            s.grid(), in.ls);
        EXPECT_LE(rel_error(sub, full.index_select(1, idx)), testing::kTwinRelTolF32) << e.describe();
    }
}

TEST(HybridInference, RowLogMassIsLseMinusMax) {
    torch::manual_seed(5);
    auto q = torch::randn({2, 3, 37, 16}) * 4, k = torch::randn({2, 3, 29, 16}) * 4;
    auto la = ops::row_log_mass(q, k, 0.25, 8);  // [2, 3, 37]
    auto s = torch::matmul(q.to(torch::kFloat64), k.to(torch::kFloat64).transpose(-1, -2)) * 0.25;
    auto expect = torch::logsumexp(s, -1) - std::get<0>(s.max(-1));
    EXPECT_LE(rel_error(la, expect), 1e-5);
    EXPECT_GE(la.min().item<double>(), 0.0);
}

TEST(HybridInference, CombineWritesOnlyItsRows) {
    // Batched-chunk layout of o ([B*nc, H, chunk, D]) into rows [n0, n0 + nc*chunk) of y [B, N, H, D].
    torch::manual_seed(6);
    const int64_t B = 2, H = 3, D = 8, N = 20, nc = 3, chunk = 4, n0 = 5;
    auto o = torch::randn({B * nc, H, chunk, D}), la = torch::rand({B * nc, H, chunk});
    auto nd = torch::rand({B, H, N, D + 8});
    auto y = torch::full({B, N, H, D}, 7.0);
    ops::hybrid_combine_into(o, la, nc, nd, y, n0, nc * chunk);
    auto of = o.view({B, nc, H, chunk, D}).permute({0, 2, 1, 3, 4}).reshape({B, H, nc * chunk, D});
    auto a = torch::exp(la.view({B, nc, H, chunk}).permute({0, 2, 1, 3}).reshape({B, H, nc * chunk, 1}));
    auto rows = nd.narrow(2, n0, nc * chunk);
    auto expect = ((a * of + rows.narrow(3, 0, D)) / (a + rows.narrow(3, D, 1))).transpose(1, 2);
    EXPECT_LE(rel_error(y.narrow(1, n0, nc * chunk), expect), 1e-6);
    EXPECT_TRUE(torch::equal(y.narrow(1, 0, n0), torch::full({B, n0, H, D}, 7.0)));
    EXPECT_TRUE(torch::equal(y.narrow(1, n0 + nc * chunk, N - n0 - nc * chunk),
                             torch::full({B, N - n0 - nc * chunk, H, D}, 7.0)));
}

}  // namespace
}  // namespace surgeon
