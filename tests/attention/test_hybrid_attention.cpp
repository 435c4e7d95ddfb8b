// Hybrid/linear/chunked attention: fast composite path == literal reference twin (forward and gradients) over
// random shapes, limits (rate 1, whole-video chunk, linear direct formula), recurrent == parallel, stability.
// Run: ctest --test-dir build-attn -R 'HybridAttention|FeatureMap'
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "attention/feature_maps.h"
#include "attention/hybrid_attention.h"
#include "attention/softmax_attention.h"
#include "core/error.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
using testing::rel_error;
using torch::Tensor;

struct Shape {
    int64_t B, F, Hp, Wp, H, D;
    TokenGrid grid() const { return {F, Hp, Wp}; }
    int64_t N() const { return F * Hp * Wp; }
};
// N = 18 (not divisible by 4 or 7), batch 2 with N = 36, a single frame, 5 frames (T_c = 2, 3 do not divide).
const std::vector<Shape> kShapes = {{1, 3, 2, 3, 2, 8}, {2, 4, 3, 3, 2, 16}, {1, 1, 5, 7, 1, 8}, {2, 5, 2, 2, 3, 8}};

struct Inputs {
    Tensor q, k, v, pq, pk;  // [B, N, H, D], phi [B, N, H, 2D]
};
Inputs random_inputs(const Shape& s, uint64_t seed, bool grad = false) {
    torch::manual_seed(seed);
    auto o = torch::TensorOptions().dtype(torch::kFloat32);
    Inputs in;
    in.q = torch::randn({s.B, s.N(), s.H, s.D}, o);
    in.k = torch::randn({s.B, s.N(), s.H, s.D}, o);
    in.v = torch::randn({s.B, s.N(), s.H, s.D}, o);
    in.pq = torch::softplus(torch::randn({s.B, s.N(), s.H, 2 * s.D}, o));
    in.pk = torch::softplus(torch::randn({s.B, s.N(), s.H, 2 * s.D}, o));
    if (grad)
        for (auto* t : {&in.q, &in.k, &in.v, &in.pq, &in.pk}) t->requires_grad_(true);
    return in;
}

PlanEntry hybrid(int64_t R, Stabilizer st) {
    PlanEntry e;
    e.kind = AttentionKind::Hybrid;
    e.rate = R;
    e.stabilizer = st;
    return e;
}
PlanEntry chunked(int64_t Tc, int64_t To, bool causal, Stabilizer st) {
    PlanEntry e;
    e.kind = AttentionKind::Chunked;
    e.chunk = Tc;
    e.overlap = To;
    e.causal = causal;
    e.stabilizer = st;
    return e;
}
PlanEntry linear() {
    PlanEntry e;
    e.kind = AttentionKind::Linear;
    return e;
}

// Every kind and stabiliser valid on `s` (chunks no longer than the video).
std::vector<PlanEntry> entries_for(const Shape& s) {
    std::vector<PlanEntry> out = {linear()};
    for (auto st : {Stabilizer::Max, Stabilizer::Lse}) {
        for (int64_t R : {1, 2, 3, 4, 7}) out.push_back(hybrid(R, st));
        for (int64_t Tc : {1, 2, 3})
            for (int64_t To : {0, 1})
                for (bool causal : {false, true})
                    if (Tc <= s.F && (To < s.F || Tc == s.F)) out.push_back(chunked(Tc, To, causal, st));
    }
    return out;
}

TEST(HybridAttention, FastMatchesReferenceForEveryKind) {
    int n = 0;
    for (const auto& s : kShapes) {
        auto in = random_inputs(s, 1 + n);
        for (const auto& e : entries_for(s)) {
            auto ref = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), AttentionImpl::Reference, 7);
            auto fast = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), AttentionImpl::Fast);
            ASSERT_EQ(fast.sizes(), in.q.sizes());
            EXPECT_LE(rel_error(fast, ref), testing::kTwinRelTolF32)
                << e.describe() << " B=" << s.B << " F=" << s.F << " N=" << s.N();
            ++n;
        }
    }
    EXPECT_GT(n, 60);
}

TEST(HybridAttention, GradientsAgree) {
    for (const auto& s : {kShapes[0], kShapes[3]}) {
        for (const auto& e : entries_for(s)) {
            std::vector<std::vector<Tensor>> grads;
            for (auto impl : {AttentionImpl::Reference, AttentionImpl::Fast}) {
                auto in = random_inputs(s, 11, /*grad=*/true);
                auto y = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), impl, 5);
                torch::manual_seed(99);
                auto w = torch::randn(y.sizes());
                // allow_unused: linear attention does not read q, k.
                grads.push_back(torch::autograd::grad({(y * w).sum()}, {in.q, in.k, in.v, in.pq, in.pk}, {},
                                                      std::nullopt, false, /*allow_unused=*/true));
            }
            const char* names[] = {"q", "k", "v", "phi_q", "phi_k"};
            for (int i = 0; i < 5; ++i) {
                ASSERT_EQ(grads[1][i].defined(), grads[0][i].defined()) << names[i] << " " << e.describe();
                if (!grads[0][i].defined()) continue;
                // No linear keys (rate 1): phi's true gradient is 0; the fast path's S_all - S_S leaves rounding.
                const double ref_norm = grads[0][i].norm().item<double>();
                if (ref_norm == 0) {
                    EXPECT_LE(grads[1][i].norm().item<double>(), 1e-5 * grads[0][2].norm().item<double>())
                        << names[i] << " " << e.describe();
                    continue;
                }
                EXPECT_LE(rel_error(grads[1][i], grads[0][i]), testing::kTwinRelTolF32)
                    << "grad " << names[i] << " " << e.describe() << " N=" << s.N();
            }
        }
    }
}

TEST(HybridAttention, FeatureMapParameterGradientsAgree) {
    const Shape s = kShapes[3];
    for (auto fm : {FeatureMapKind::Poly, FeatureMapKind::Hedgehog}) {
        for (auto e : {hybrid(3, Stabilizer::Max), chunked(2, 1, true, Stabilizer::Lse), linear()}) {
            e.feature_map.kind = fm;
            HybridAttention core(e, s.H, s.D, 5);
            auto in = random_inputs(s, 3);
            std::vector<std::vector<Tensor>> grads;
            for (auto impl : {AttentionImpl::Reference, AttentionImpl::Fast}) {
                core->set_impl(impl);
                auto y = core->forward(in.q, in.k, in.v, s.grid());
                torch::manual_seed(4);
                grads.push_back(torch::autograd::grad({(y * torch::randn(y.sizes())).sum()}, core->parameters()));
            }
            ASSERT_FALSE(grads[0].empty());
            for (size_t i = 0; i < grads[0].size(); ++i)
                EXPECT_LE(rel_error(grads[1][i], grads[0][i]), testing::kTwinRelTolF32)
                    << to_string(fm) << " " << e.describe() << " param " << i;
        }
    }
}

TEST(HybridAttention, RateOneAndWholeVideoChunkReproduceSoftmax) {
    for (const auto& s : kShapes) {
        auto in = random_inputs(s, 21);
        auto teacher = softmax_attention(in.q, in.k, in.v, AttentionImpl::Reference);
        for (auto st : {Stabilizer::Max, Stabilizer::Lse}) {
            for (const auto& e : {hybrid(1, st), chunked(s.F, 0, false, st), chunked(s.F, 2, true, st)}) {
                for (auto impl : {AttentionImpl::Reference, AttentionImpl::Fast}) {
                    auto y = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), impl);
                    EXPECT_LE(rel_error(y, teacher), 1e-6) << e.describe() << " " << to_string(impl);
                }
            }
        }
        // lse at rate 1 is the SDPA output itself: the linear state S_all - S_S is exactly zero.
        auto fast = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, hybrid(1, Stabilizer::Lse), s.grid(),
                                     AttentionImpl::Fast);
        EXPECT_TRUE(torch::equal(fast, softmax_attention(in.q, in.k, in.v, AttentionImpl::Fast)));
    }
}

TEST(HybridAttention, LinearEqualsDirectFormula) {
    for (const auto& s : kShapes) {
        auto in = random_inputs(s, 31);
        auto pq = in.pq.to(torch::kFloat64), pk = in.pk.to(torch::kFloat64), v = in.v.to(torch::kFloat64);
        auto S = torch::einsum("bnhf,bnhd->bhfd", {pk, v});                       // [B, H, D', D]
        auto z = pk.sum(1);                                                        // [B, H, D']
        auto direct = torch::einsum("bnhf,bhfd->bnhd", {pq, S}) /
                      torch::einsum("bnhf,bhf->bnh", {pq, z}).unsqueeze(-1);       // [B, N, H, D]
        for (auto impl : {AttentionImpl::Reference, AttentionImpl::Fast}) {
            auto y = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, linear(), s.grid(), impl);
            EXPECT_LE(rel_error(y, direct), testing::kTwinRelTolF32) << to_string(impl);
        }
    }
}

TEST(HybridAttention, RecurrentEqualsParallelForCausalChunks) {
    const Shape s{2, 7, 2, 3, 2, 8};
    auto in = random_inputs(s, 41);
    for (auto st : {Stabilizer::Max, Stabilizer::Lse}) {
        for (int64_t Tc : {1, 2, 3}) {
            for (int64_t To : {0, 1, 3}) {
                auto e = chunked(Tc, To, true, st);
                auto par = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), AttentionImpl::Reference);
                auto rec = chunked_causal_recurrent(in.q, in.k, in.v, in.pq, in.pk, e, s.grid());
                EXPECT_LE(rel_error(rec, par), testing::kTwinRelTolF32) << e.describe();
            }
        }
    }
    // Memory does not grow with the number of chunks: at most T_o frames stay cached.
    CausalChunkState state(chunked(1, 2, true, Stabilizer::Lse), s.Hp * s.Wp);
    const int64_t hw = s.Hp * s.Wp;
    for (int64_t f = 0; f < s.F; ++f) {
        auto sl = [&](const Tensor& t) { return t.narrow(1, f * hw, hw); };
        state.step(sl(in.q), sl(in.k), sl(in.v), sl(in.pq), sl(in.pk));
        EXPECT_LE(state.cached_frames(), 2);
    }
    EXPECT_EQ(state.frames_seen(), s.F);
}

TEST(HybridAttention, CoreRecurrentModeMatchesParallel) {
    const Shape s{1, 5, 2, 2, 2, 8};
    auto in = random_inputs(s, 51);
    auto e = chunked(2, 1, true, Stabilizer::Max);
    HybridAttention core(e, s.H, s.D, 3);
    auto par = core->forward(in.q, in.k, in.v, s.grid());
    core->set_recurrent(true);
    auto rec = core->forward(in.q, in.k, in.v, s.grid());
    EXPECT_LE(rel_error(rec, par), testing::kTwinRelTolF32);
}

TEST(FeatureMap, NonNegativeAndShaped) {
    torch::manual_seed(0);
    const int64_t H = 3, D = 8;
    auto x = torch::randn({2, 10, H, D}) * 50;  // far outside the RMS-normed range
    for (auto kind : {FeatureMapKind::Poly, FeatureMapKind::Hedgehog, FeatureMapKind::Elu1, FeatureMapKind::Relu}) {
        for (int64_t parts : {1, 2, 3}) {
            FeatureMapSpec spec;
            spec.kind = kind;
            spec.parts = parts;
            FeatureMap phi(spec, H, D, at::make_generator<at::CPUGeneratorImpl>(1));
            auto y = phi->forward(x, torch::kFloat32);
            EXPECT_EQ(y.size(3), feature_dim(phi->spec(), D));
            EXPECT_EQ(y.size(3), phi->out_dim());
            EXPECT_GE(y.min().item<double>(), 0.0) << to_string(kind);
            EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << to_string(kind);
            int64_t n = 0;
            for (const auto& p : phi->parameters()) n += p.numel();
            EXPECT_EQ(n, H * feature_map_params_per_head(spec, D)) << to_string(kind);
        }
    }
}

TEST(FeatureMap, BatchedOverHeadsEqualsPerHeadLoop) {
    const int64_t H = 3, D = 8;
    FeatureMapSpec spec;  // poly, hidden 2D, P = 2
    FeatureMap phi(spec, H, D, at::make_generator<at::CPUGeneratorImpl>(2));
    torch::manual_seed(1);
    torch::NoGradGuard ng;
    phi->b1.normal_();
    phi->b2.normal_();
    auto x = torch::randn({2, 5, H, D});
    auto y = phi->forward(x, torch::kFloat32);  // [2, 5, H, 2D]
    for (int64_t h = 0; h < H; ++h) {
        auto xh = x.select(2, h);                                                  // [2, 5, D]
        auto psi = torch::matmul(torch::gelu(torch::matmul(xh, phi->w1[h]) + phi->b1[h]), phi->w2[h]) + phi->b2[h];
        auto g = torch::softplus(psi).chunk(2, -1);
        auto expect = torch::cat({g[0], g[1].pow(2)}, -1);
        EXPECT_LE(rel_error(y.select(2, h), expect), 1e-6) << "head " << h;
    }
}

TEST(HybridAttention, FiniteWithExtremeScoresAndEqualKeys) {
    const Shape s{1, 3, 2, 2, 2, 16};
    torch::manual_seed(61);
    auto q = torch::randn({s.B, s.N(), s.H, s.D}), k = torch::randn({s.B, s.N(), s.H, s.D});
    auto v = torch::randn({s.B, s.N(), s.H, s.D});
    const double smax = (torch::einsum("bnhd,bmhd->bhnm", {q, k}) / std::sqrt(double(s.D))).abs().max().item<double>();
    const double a = std::sqrt(80.0 / smax);  // scores now span about +-80
    std::vector<std::pair<std::string, std::pair<Tensor, Tensor>>> cases = {
        {"scores +-80", {q * a, k * a}},
        {"all-equal keys", {q, k.narrow(1, 0, 1).expand_as(k).contiguous()}},
    };
    for (const auto& [name, qk] : cases) {
        for (auto fm : {FeatureMapKind::Poly, FeatureMapKind::Hedgehog, FeatureMapKind::Elu1, FeatureMapKind::Relu}) {
            for (auto st : {Stabilizer::Max, Stabilizer::Lse}) {
                for (auto e : {hybrid(2, st), chunked(1, 1, true, st), chunked(2, 0, false, st), linear()}) {
                    e.feature_map.kind = fm;
                    HybridAttention core(e, s.H, s.D, 9);
                    for (auto impl : {AttentionImpl::Reference, AttentionImpl::Fast}) {
                        core->set_impl(impl);
                        auto qq = qk.first.clone().requires_grad_(true), kk = qk.second.clone().requires_grad_(true);
                        auto y = core->forward(qq, kk, v, s.grid());
                        auto g = torch::autograd::grad({y.sum()}, {qq, kk});
                        EXPECT_TRUE(torch::isfinite(y).all().item<bool>())
                            << name << " " << e.describe() << " " << to_string(impl);
                        EXPECT_TRUE(torch::isfinite(g[0]).all().item<bool>() && torch::isfinite(g[1]).all().item<bool>())
                            << "grad " << name << " " << e.describe() << " " << to_string(impl);
                    }
                }
            }
        }
    }
}

TEST(HybridAttention, RejectsMismatchedInputs) {
    const Shape s = kShapes[0];
    auto in = random_inputs(s, 71);
    try {
        hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, hybrid(2, Stabilizer::Lse), TokenGrid{2, 2, 3},
                         AttentionImpl::Fast);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("token grid 2x2x3 = 12 tokens, but q has 18"), std::string::npos)
            << e.what();
    }
    try {
        hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, chunked(4, 0, false, Stabilizer::Lse), s.grid(),
                         AttentionImpl::Fast);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("longer than the video (3 frames)"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace surgeon
