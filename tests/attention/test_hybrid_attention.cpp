// Hybrid/linear/chunked attention: fast composite path == literal reference twin (forward and gradients) over
// random shapes, limits (rate 1, whole-video chunk, linear direct formula), recurrent == parallel, stability.
// Run: ctest --test-dir build -R 'HybridAttention|FeatureMap'
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "attention/feature_maps.h"
#include "attention/hybrid_attention.h"
#include "attention/softmax_attention.h"
#include "core/error.h"
#include "testing/attention_cases.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
using testing::rel_error;
using torch::Tensor;

using Shape = testing::AttentionShape;
using Inputs = testing::AttentionInputs;
// N = 18 (not divisible by 4 or 7), batch 2 with N = 36, a single frame, 5 frames (T_c = 2, 3 do not divide).
const std::vector<Shape> kShapes = {{1, 3, 2, 3, 2, 8}, {2, 4, 3, 3, 2, 16}, {1, 1, 5, 7, 1, 8}, {2, 5, 2, 2, 3, 8}};

Inputs random_inputs(const Shape& s, uint64_t seed, bool grad = false) {
    auto in = testing::random_attention_inputs(s, seed);
    if (grad)
        for (auto* t : {&in.q, &in.k, &in.v, &in.pq, &in.pk}) t->requires_grad_(true);
    return in;
}

using testing::chunked_entry;
using testing::hybrid_entry;
using testing::linear_entry;

// Every kind and stabiliser valid on `s` (chunks no longer than the video).
std::vector<PlanEntry> entries_for(const Shape& s) { return testing::plan_entries_for(s, {1, 2, 3, 4, 7}, {0, 1}); }

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
        for (auto e : {hybrid_entry(3, Stabilizer::Max), chunked_entry(2, 1, true, Stabilizer::Lse), linear_entry()}) {
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
            for (const auto& e :
                 {hybrid_entry(1, st), chunked_entry(s.F, 0, false, st), chunked_entry(s.F, 2, true, st)}) {
                for (auto impl : {AttentionImpl::Reference, AttentionImpl::Fast}) {
                    auto y = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), impl);
                    EXPECT_LE(rel_error(y, teacher), 1e-6) << e.describe() << " " << to_string(impl);
                }
            }
        }
        // lse at rate 1 is the SDPA output itself: the linear state S_all - S_S is exactly zero.
        auto fast = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, hybrid_entry(1, Stabilizer::Lse), s.grid(),
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
            auto y = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, linear_entry(), s.grid(), impl);
            EXPECT_LE(rel_error(y, direct), testing::kTwinRelTolF32) << to_string(impl);
        }
    }
}

TEST(HybridAttention, RecurrentEqualsParallelForCausalChunks) {
    const Shape s{2, 7, 2, 3, 2, 8};
    auto in = random_inputs(s, 41);
    const int threads = at::get_num_threads();
    at::set_num_threads(1);  // one summation order on every machine (the tolerance below holds for any order)
    for (auto st : {Stabilizer::Max, Stabilizer::Lse}) {
        for (int64_t Tc : {1, 2, 3}) {
            for (int64_t To : {0, 1, 3}) {
                auto e = chunked_entry(Tc, To, true, st);
                auto par = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), AttentionImpl::Reference);
                auto rec = chunked_causal_recurrent(in.q, in.k, in.v, in.pq, in.pk, e, s.grid());
                // Positive weights: attention of |v| is y_abs; features have 2D terms, N keys, F chunk rescalings.
                auto abs_out = hybrid_attention(in.q, in.k, in.v.abs(), in.pq, in.pk, e, s.grid(), AttentionImpl::Reference);
                const double kappa = (abs_out.norm() / par.norm()).item<double>();
                const double tol = testing::attention_order_rel_tol(2 * s.D, s.N(), s.F, kappa);
                EXPECT_LE(rel_error(rec, par), tol) << e.describe() << " kappa " << kappa;
            }
        }
    }
    // Memory does not grow with the number of chunks: at most T_o frames stay cached.
    CausalChunkState state(chunked_entry(1, 2, true, Stabilizer::Lse), s.Hp * s.Wp);
    const int64_t hw = s.Hp * s.Wp;
    for (int64_t f = 0; f < s.F; ++f) {
        auto sl = [&](const Tensor& t) { return t.narrow(1, f * hw, hw); };
        state.step(sl(in.q), sl(in.k), sl(in.v), sl(in.pq), sl(in.pk));
        EXPECT_LE(state.cached_frames(), 2);
    }
    EXPECT_EQ(state.frames_seen(), s.F);
    at::set_num_threads(threads);
}

TEST(HybridAttention, CoreRecurrentModeMatchesParallel) {
    const Shape s{1, 5, 2, 2, 2, 8};
    auto in = random_inputs(s, 51);
    auto e = chunked_entry(2, 1, true, Stabilizer::Max);
    HybridAttention core(e, s.H, s.D, 3);
    auto par = core->forward(in.q, in.k, in.v, s.grid());
    core->set_recurrent(true);
    auto rec = core->forward(in.q, in.k, in.v, s.grid());
    EXPECT_LE(rel_error(rec, par), testing::kTwinRelTolF32);
}

TEST(HybridAttention, LinearScaleFastMatchesReferenceAndRecurrent) {
    // The per-head linear weight lambda_h(i) = exp(s_h) / max(1, |T_L(i)|): fast == literal reference (forward and
    // the gradient w.r.t. s), and the recurrent causal form == the parallel one, for every kind with both branches.
    int n = 0;
    for (const auto& s : {kShapes[1], kShapes[3]}) {
        for (const auto& e : entries_for(s)) {
            if (!e.has_softmax_branch() || !e.has_linear_branch()) continue;
            auto in = random_inputs(s, 81 + n);
            torch::manual_seed(5 + n);
            const auto ls0 = torch::randn({s.H}) * 2;  // one log_scale for both twins
            std::vector<Tensor> out, grad;
            for (auto impl : {AttentionImpl::Reference, AttentionImpl::Fast}) {
                auto ls = ls0.clone().requires_grad_(true);
                auto y = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), impl, 5, ls);
                torch::manual_seed(7);
                grad.push_back(torch::autograd::grad({(y * torch::randn(y.sizes())).sum()}, {ls})[0]);
                out.push_back(y.detach());
            }
            EXPECT_LE(rel_error(out[1], out[0]), testing::kTwinRelTolF32) << e.describe();
            // d loss / d s_h is one sum over all B*N*D outputs of head h (up to ~1e3 terms of both signs): the two
            // twins sum in different orders, so its rounding is ~n*eps relative to the sum of |terms|, i.e. larger than
            // an elementwise output's. Seen up to 4e-5 across CPUs; bound 2e-4 = 20 x kTwinRelTolF32.
            EXPECT_LE(rel_error(grad[1], grad[0]), 20 * testing::kTwinRelTolF32) << "grad s " << e.describe();
            if (e.kind == AttentionKind::Chunked && e.causal) {
                auto rec = chunked_causal_recurrent(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), ls0);
                EXPECT_LE(rel_error(rec, out[0]), testing::kTwinRelTolF32) << "recurrent " << e.describe();
            }
            ++n;
        }
    }
    EXPECT_GT(n, 20);
}

TEST(HybridAttention, FreshBlockIsNearSoftmaxOnTS) {
    // A fresh hybrid block must compute (nearly) softmax over its own softmax keys T_S: the linear branch starts with
    // kLinearInitMass of the softmax mass. Per query, y_i - o_i = m_i / (1 + m_i) (ybar_L,i - o_i) with m_i the
    // linear mass lambda phi_q^T z_L (lse: softmax mass 1), so |y_i - o_i| <= m_i / (1 + m_i) * 2 max_j |v_j|.
    // Inputs: q, k with unit RMS per head (what Wan's q/k RMSNorm gives before its gain), N = 512 tokens.
    const Shape s{1, 4, 8, 16, 2, 32};
    auto in = random_inputs(s, 91);
    const auto e = hybrid_entry(4, Stabilizer::Lse);
    HybridAttention core(e, s.H, s.D, 17);
    torch::NoGradGuard ng;
    auto [pq, pk] = core->features(in.q, in.k);
    auto y = core->forward(in.q, in.k, in.v, s.grid());                                    // [B, N, H, D]
    auto sb = detail::softmax_branch(in.q.transpose(1, 2), in.k.transpose(1, 2).slice(2, 0, s.N(), 4),
                                     in.v.transpose(1, 2).slice(2, 0, s.N(), 4), Stabilizer::Lse);
    auto o = sb.o.transpose(1, 2);                                                          // softmax on T_S
    // Linear mass per query: lambda * phi_q(q_i) . sum_{j in T_L} phi_k(k_j).
    auto keep = torch::ones({s.N()}, torch::kBool);
    keep.slice(0, 0, s.N(), 4).fill_(false);
    auto zL = pk.index({torch::indexing::Slice(), keep}).sum(1);                            // [B, H, D']
    const int64_t nL = keep.sum().item<int64_t>();
    auto lam = torch::exp(core->linear_log_scale) / static_cast<double>(nL);               // [H]
    auto m = torch::einsum("bnhf,bhf->bnh", {pq, zL}) * lam;                               // [B, N, H]
    const double mean_mass = m.mean().item<double>();
    EXPECT_GT(mean_mass, 0.5 * kLinearInitMass);
    EXPECT_LT(mean_mass, 2.0 * kLinearInitMass);
    const double vmax = in.v.norm(2, -1).max().item<double>();
    auto bound = (m / (1 + m)) * 2 * vmax + 1e-5;                                          // [B, N, H]
    EXPECT_TRUE(((y - o).norm(2, -1) <= bound).all().item<bool>());
    EXPECT_LT(rel_error(y, o), 0.15);
    // The unweighted form (the paper's, no scale): the linear branch outweighs the softmax keys by orders of
    // magnitude, which is the defect this weight removes.
    auto m_unweighted = torch::einsum("bnhf,bhf->bnh", {pq, zL});
    EXPECT_GT(m_unweighted.mean().item<double>(), 100.0);
    // calibrate_linear_scale on data sets the mass directly.
    core->calibrate_linear_scale(in.q * 3, in.k * 3, 0.05);
    auto f3 = core->features(in.q * 3, in.k * 3);
    auto zL3 = f3.second.index({torch::indexing::Slice(), keep}).sum(1);
    auto lam3 = torch::exp(core->linear_log_scale) / static_cast<double>(nL);
    const double calibrated = (torch::einsum("bnhf,bhf->bnh", {f3.first, zL3}) * lam3).mean().item<double>();
    EXPECT_NEAR(calibrated, 0.05, 0.05 * 0.25);  // estimated on a 4096-token subset of 512 tokens: all of them
}

TEST(HybridAttention, MaxStabilizerFastEqualsReferenceInBf16) {
    // bf16 inputs: the fast path's softmax branch runs SDPA in bf16 and log a = lse - max in float32 from one score
    // pass; the reference computes everything in float32 from the same (bf16-representable) inputs. Tolerance:
    // kBf16RelTol (bf16 roundoff of the SDPA output, see tolerance.h).
    for (const auto& s : {kShapes[1], kShapes[3]}) {
        auto in = random_inputs(s, 101);
        auto bf = [](const Tensor& t) { return t.to(torch::kBFloat16); };
        for (const auto& e : {hybrid_entry(2, Stabilizer::Max), hybrid_entry(3, Stabilizer::Max),
                              chunked_entry(1, 1, true, Stabilizer::Max),
                              chunked_entry(2, 0, false, Stabilizer::Max)}) {
            torch::manual_seed(3);
            auto ls = torch::randn({s.H});
            auto ref = hybrid_attention(bf(in.q), bf(in.k), bf(in.v), in.pq, in.pk, e, s.grid(), AttentionImpl::Reference,
                                        512, ls);
            auto fast = hybrid_attention(bf(in.q), bf(in.k), bf(in.v), in.pq, in.pk, e, s.grid(), AttentionImpl::Fast,
                                         512, ls);
            EXPECT_LE(rel_error(fast.to(torch::kFloat32), ref), testing::kBf16RelTol) << e.describe();
        }
        // log a = lse - max >= 0 exactly (one pass), also for extreme scores.
        auto q = bf(in.q * 20).transpose(1, 2), k = bf(in.k * 20).transpose(1, 2), v = bf(in.v).transpose(1, 2);
        auto sb = detail::softmax_branch(q, k, v, Stabilizer::Max, 7);
        EXPECT_GE(sb.log_a.min().item<double>(), 0.0);
        EXPECT_LE(sb.log_a.max().item<double>(), std::log(static_cast<double>(s.N())) + 1e-6);
    }
}

TEST(HybridAttention, QuerySubsetEqualsRowsOfTheFullOutput) {
    const Shape s{2, 3, 3, 4, 2, 8};
    auto in = random_inputs(s, 111);
    auto idx = torch::tensor({0, 5, 7, 8, 20, 35}, torch::kLong);
    auto ls = torch::randn({s.H});
    for (const auto& e : {hybrid_entry(2, Stabilizer::Lse), hybrid_entry(3, Stabilizer::Max),
                          hybrid_entry(5, Stabilizer::Lse), linear_entry()}) {
        auto full = hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, e, s.grid(), AttentionImpl::Reference, 512, ls);
        auto sub = hybrid_attention_query_subset(in.q.index_select(1, idx), in.k, in.v, in.pq.index_select(1, idx),
                                                 in.pk, e, s.grid(), ls);
        EXPECT_LE(rel_error(sub, full.index_select(1, idx)), testing::kTwinRelTolF32) << e.describe();
    }
    EXPECT_THROW(hybrid_attention_query_subset(in.q.narrow(1, 0, 3), in.k, in.v, in.pq.narrow(1, 0, 3), in.pk,
                                               chunked_entry(1, 0, false, Stabilizer::Lse), s.grid()),
                 Error);
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
                for (auto e :
                     {hybrid_entry(2, st), chunked_entry(1, 1, true, st), chunked_entry(2, 0, false, st), linear_entry()}) {
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
        hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, hybrid_entry(2, Stabilizer::Lse), TokenGrid{2, 2, 3},
                         AttentionImpl::Fast);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("token grid 2x2x3 = 12 tokens, but q has 18"), std::string::npos)
            << e.what();
    }
    try {
        hybrid_attention(in.q, in.k, in.v, in.pq, in.pk, chunked_entry(4, 0, false, Stabilizer::Lse), s.grid(),
                         AttentionImpl::Fast);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("longer than the video (3 frames)"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace surgeon
