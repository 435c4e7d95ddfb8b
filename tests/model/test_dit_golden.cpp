// The DiT port against shared/golden/dit_forward.safetensors (official code and diffusers, fp32 CPU):
// output and every intermediate, for the official, sharded and diffusers folders; bf16 within a stated tolerance.
#include <filesystem>

#include "core/safetensors.h"
#include "model/model_io.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

namespace {
struct Run {
    torch::Tensor out;
    TensorMap acts;
    std::map<std::string, torch::ScalarType> dtypes;
};
Run run_golden(const std::string& folder, Precision p, AttentionImpl impl = AttentionImpl::Fast) {
    auto in = load_safetensors(golden("dit_forward.safetensors"));
    auto m = load_wan_model(golden(folder), torch::kCPU, p).model;
    m->set_attention_impl(impl);
    Run r;
    ActivationTap tap = [&](const std::string& n, const torch::Tensor& t) {
        r.acts[n] = t.to(torch::kFloat32);
        r.dtypes[n] = t.scalar_type();
    };
    torch::NoGradGuard ng;
    r.out = m->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context"), &tap);
    return r;
}
}  // namespace

class DitGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(DitGolden, OutputAndIntermediatesMatchBothReferences) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto ref = load_safetensors(golden("dit_forward.safetensors"));
    auto r = run_golden(GetParam(), Precision::Float32);
    EXPECT_LE(rel_error(r.out, ref.at("out.velocity_official")), kGoldenRelTol);
    EXPECT_LE(rel_error(r.out, ref.at("out.velocity")), kGoldenRelTol);
    int checked = 0;
    for (const auto& [name, t] : ref) {
        if (name.rfind("act.", 0) != 0) continue;
        const std::string key = name.substr(4);
        ASSERT_TRUE(r.acts.count(key)) << "no intermediate observed for " << key;
        EXPECT_LE(rel_error(r.acts.at(key), t), kGoldenRelTol) << key;
        ++checked;
    }
    EXPECT_EQ(checked, 12);  // 4 embeddings + 2 blocks x 4
}

INSTANTIATE_TEST_SUITE_P(Folders, DitGolden,
                         ::testing::Values("wan-t2v-tiny", "wan-t2v-tiny-sharded", "wan-t2v-tiny-diffusers"));

TEST(DitGoldenTest, ReferenceAttentionTwinMatches) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto ref = load_safetensors(golden("dit_forward.safetensors"));
    auto fast = run_golden("wan-t2v-tiny", Precision::Float32, AttentionImpl::Fast);
    auto slow = run_golden("wan-t2v-tiny", Precision::Float32, AttentionImpl::Reference);
    EXPECT_LE(rel_error(slow.out, ref.at("out.velocity_official")), kGoldenRelTol);
    EXPECT_LE(rel_error(fast.out, slow.out), kTwinRelTolF32);
}

TEST(DitGoldenTest, Bf16WithinStatedTolerance) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto ref = load_safetensors(golden("dit_forward.safetensors"));
    auto r = run_golden("wan-t2v-tiny", Precision::BFloat16);
    const double err = rel_error(r.out, ref.at("out.velocity_official"));
    EXPECT_LE(err, kBf16RelTol);
    EXPECT_GT(err, 1e-6) << "bf16 mode should actually round (else it silently ran fp32)";
    // The residual stream stays fp32 after block 0; GEMM outputs are bf16.
    EXPECT_EQ(r.acts.at("blocks.0").scalar_type(), torch::kFloat32);
}

// bf16-lean (training speed mode, not Wan's recipe): the residual stream is bf16 too, so errors are larger
// than Wan's bf16 recipe but of the same kind; still far below what a wrong cast or a dropped term gives.
TEST(DitGoldenTest, Bf16LeanWithinStatedTolerance) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto ref = load_safetensors(golden("dit_forward.safetensors"));
    auto r = run_golden("wan-t2v-tiny", Precision::BFloat16Lean);
    auto official = run_golden("wan-t2v-tiny", Precision::BFloat16);
    const double err = rel_error(r.out, ref.at("out.velocity_official"));
    EXPECT_LE(err, kBf16LeanRelTol);
    EXPECT_GT(err, 1e-6);
    EXPECT_GT(rel_error(r.out, official.out), 1e-6) << "lean mode should differ from the official bf16 recipe";
    EXPECT_EQ(r.dtypes.at("blocks.1"), torch::kBFloat16);         // residual stream in bf16
    EXPECT_EQ(official.dtypes.at("blocks.1"), torch::kFloat32);  // Wan's recipe keeps it fp32
}

TEST(DitGoldenTest, RopeTablesMatchDiffusers) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto ref = load_safetensors(golden("dit_forward.safetensors"));
    // Grid 3 x 4 x 6, head dim 16: diffusers stores cos/sin repeated per interleaved pair [1, 72, 1, 16].
    auto t = rope_tables(16, TokenGrid{3, 4, 6}, torch::kFloat64, torch::kCPU);
    auto cos_ref = ref.at("rope.cos").view({72, 8, 2}).select(2, 0);
    auto sin_ref = ref.at("rope.sin").view({72, 8, 2}).select(2, 0);
    EXPECT_LE(rel_error(t.cos, cos_ref), 1e-6);
    EXPECT_LE(rel_error(t.sin, sin_ref), 1e-6);
}

TEST(DitGoldenTest, DiffusersAndOfficialFoldersLoadIdenticalWeights) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny"));
    auto a = read_model_tensors(find_model_folder(golden("wan-t2v-tiny")));
    auto b = read_model_tensors(find_model_folder(golden("wan-t2v-tiny-diffusers")));
    auto c = read_model_tensors(find_model_folder(golden("wan-t2v-tiny-sharded")));
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(a.size(), c.size());
    for (const auto& [n, t] : a) {
        ASSERT_TRUE(b.count(n)) << n;
        EXPECT_TRUE(torch::equal(t, b.at(n))) << n;
        EXPECT_TRUE(torch::equal(t, c.at(n))) << n;
    }
}

TEST(DitGoldenTest, SaveLoadRoundTripIsExact) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny"));
    auto m = load_wan_model(golden("wan-t2v-tiny")).model;
    auto dir = temp_dir("roundtrip");
    save_wan_model(m, dir + "/single");
    save_wan_model(m, dir + "/sharded", torch::kFloat32, 40000);
    EXPECT_TRUE(std::filesystem::exists(dir + "/sharded/diffusion_pytorch_model.safetensors.index.json"));
    auto ref = state_dict(*m);
    for (const auto& sub : {"/single", "/sharded"}) {
        auto m2 = load_wan_model(dir + sub).model;
        for (const auto& [n, t] : state_dict(*m2)) EXPECT_TRUE(torch::equal(t, ref.at(n))) << sub << " " << n;
    }
}

TEST(DitModel, ParameterCountMatchesPublishedModels) {
    // wan-reference.md §0: T2V-1.3B has 1,418,996,800 parameters in 825 tensors; 14B 14,288,491,584.
    EXPECT_EQ(wan_preset("wan2.1-t2v-1.3b").num_parameters(), 1418996800LL);
    EXPECT_EQ(wan_preset("wan2.1-t2v-14b").num_parameters(), 14288491584LL);
    WanConfig tiny;
    tiny.dim = 32, tiny.ffn_dim = 96, tiny.num_heads = 2, tiny.num_layers = 2, tiny.in_dim = 4, tiny.out_dim = 4;
    tiny.text_dim = 24, tiny.freq_dim = 32, tiny.text_len = 10;
    WanModel m(tiny);
    int64_t n = 0;
    for (const auto& p : m->parameters()) n += p.numel();
    EXPECT_EQ(n, tiny.num_parameters());
    EXPECT_EQ(m->named_parameters().size(), 15u + 27u * 2u);  // 825 = 15 + 27 * 30 for the 1.3B model
}

TEST(DitModel, ObservesQkvAfterNormAndRope) {
    WanConfig c;
    c.dim = 32, c.ffn_dim = 64, c.num_heads = 2, c.num_layers = 1, c.in_dim = 4, c.out_dim = 4, c.text_dim = 8;
    c.freq_dim = 16, c.text_len = 5;
    WanModel m(c);
    std::map<std::string, torch::Tensor> seen;
    ActivationTap tap = [&](const std::string& n, const torch::Tensor& t) { seen[n] = t; };
    torch::NoGradGuard ng;
    auto out = m->forward(torch::randn({1, 4, 2, 4, 6}), torch::tensor({500.0}), torch::randn({1, 3, 8}), &tap);
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 2, 4, 6}));
    for (auto n : {"blocks.0.self_attn.q", "blocks.0.self_attn.k", "blocks.0.self_attn.v", "blocks.0.self_attn.attn"})
        EXPECT_EQ(seen.at(n).sizes(), (std::vector<int64_t>{1, 12, 2, 16})) << n;
    // Attention output equals softmax(q k^T / sqrt(D)) v on the observed tensors.
    auto q = seen["blocks.0.self_attn.q"].transpose(1, 2), k = seen["blocks.0.self_attn.k"].transpose(1, 2);
    auto v = seen["blocks.0.self_attn.v"].transpose(1, 2);
    auto y = torch::softmax(torch::matmul(q, k.transpose(2, 3)) / 4.0, -1).matmul(v).transpose(1, 2);
    EXPECT_LE(rel_error(seen["blocks.0.self_attn.attn"], y), 1e-5);
}

TEST(DitModel, EveryParameterReceivesGradient) {
    // Training needs gradients through every path (a non-differentiable fast op would silently freeze q/k).
    WanConfig c;
    c.dim = 32, c.ffn_dim = 64, c.num_heads = 2, c.num_layers = 2, c.in_dim = 3, c.out_dim = 3, c.text_dim = 8;
    c.freq_dim = 16, c.text_len = 4, c.patch_size = {1, 4, 4};
    WanModel m(c);
    auto v = m->forward(torch::randn({2, 3, 2, 8, 8}), torch::tensor({100.0, 700.0}), torch::randn({2, 4, 8}));
    v.pow(2).mean().backward();
    for (const auto& p : m->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    }
}

// The DiT must be able to tell a clip from its time reversal: with temporal patch 1, everything except RoPE's
// odd (sine) part commutes with reversing the frames, so a model whose output for reversed frames were the
// reversed output could not learn "moving left" from "moving right". Same head size as the bundled teacher (64).
TEST(DitModel, IsNotTimeReversalEquivariant) {
    WanConfig c;
    c.dim = 128, c.ffn_dim = 256, c.num_heads = 2, c.num_layers = 2, c.in_dim = 3, c.out_dim = 3, c.text_dim = 8;
    c.freq_dim = 16, c.text_len = 4, c.patch_size = {1, 4, 4};
    torch::manual_seed(0);
    WanModel m(c);
    for (auto& p : m->parameters())  // no zero-initialised matrices; norm gains stay 1 (attention not flattened)
        if (p.dim() >= 2) p.data().normal_(0.0, 0.05);
    torch::NoGradGuard ng;
    auto x = torch::randn({1, 3, 8, 16, 16}), ctx = torch::randn({1, 4, 8}), t = torch::tensor({500.0});
    auto direct = m->forward(x, t, ctx).flip({2});
    auto reversed = m->forward(x.flip({2}), t, ctx);
    const double diff = rel_error(reversed, direct);
    EXPECT_GT(diff, 1e-3) << "time reversal commutes with the model";  // measured 5.1e-3; an equivariant model: ~1e-5
    // Control: the comparison does get near zero for the same input twice.
    EXPECT_LE(rel_error(m->forward(x, t, ctx), m->forward(x, t, ctx)), 1e-6);
}

