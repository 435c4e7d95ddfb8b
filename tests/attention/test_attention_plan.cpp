// Attention plans (JSON round trip, validation messages), the cost model, `surgeon plan uniform`, and surgery:
// apply_plan on the tiny golden model (rate 1 / whole-video chunk == golden velocity), student save/load.
// Run: ctest --test-dir build-attn -R 'AttentionPlan|CostModel|Surgery|PlanCli'
#include <filesystem>

#include "attention/cost_model.h"
#include "attention/hybrid_attention.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"
#include "surgery/plan_report.h"
#include "surgery/student_checkpoint.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
namespace fs = std::filesystem;
using testing::rel_error;

// Runs `f`, expects a surgeon::Error whose message contains `needle`.
template <typename F>
void expect_error(F&& f, const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "expected an error containing: " << needle;
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    }
}

AttentionPlan mixed_plan(int64_t D) {
    AttentionPlan p;
    PlanEntry h;
    h.kind = AttentionKind::Hybrid;
    h.rate = 4;
    h.stabilizer = Stabilizer::Max;
    h.feature_map.kind = FeatureMapKind::Poly;
    h.feature_map.parts = 3;
    PlanEntry c;
    c.kind = AttentionKind::Chunked;
    c.chunk = 3;
    c.overlap = 1;
    c.causal = true;
    c.feature_map.kind = FeatureMapKind::Hedgehog;
    PlanEntry l;
    l.kind = AttentionKind::Linear;
    l.feature_map.kind = FeatureMapKind::Elu1;
    p.blocks = {h.normalized(D), PlanEntry{}, c.normalized(D), l.normalized(D)};
    return p;
}

TEST(AttentionPlan, JsonRoundTrip) {
    const auto plan = mixed_plan(16);
    const auto back = AttentionPlan::parse(plan.dump());
    EXPECT_EQ(back, plan);
    EXPECT_EQ(back.dump(), plan.dump());
    EXPECT_EQ(back.blocks[0].feature_map.hidden, 32);  // default 2D resolved
    const auto dir = testing::temp_dir("plan_rt");
    plan.save(dir + "/p.json");
    EXPECT_EQ(AttentionPlan::load(dir + "/p.json"), plan);
    EXPECT_EQ(plan.to_json()["version"], AttentionPlan::kVersion);
}

TEST(AttentionPlan, BadPlansAreRejectedWithClearMessages) {
    const int64_t L = 4, D = 16;
    auto plan_json = mixed_plan(D).to_json();
    auto with = [&](auto edit) {
        auto j = plan_json;
        edit(j);
        return j.dump();
    };
    expect_error([&] { AttentionPlan::parse(with([](auto& j) { j["blocks"][1]["kind"] = "sparse"; })); },
                 "unknown attention kind 'sparse' (expected softmax|hybrid|linear|chunked)");
    expect_error([&] { AttentionPlan::parse(with([](auto& j) { j["version"] = 7; })); },
                 "attention plan version: expected 1, got 7");
    expect_error([&] { AttentionPlan::parse(with([](auto& j) { j["blocks"][0]["rat"] = 2; })); },
                 "block 0: unknown key 'rat'");
    expect_error([&] { AttentionPlan::parse(with([](auto& j) { j["blocks"][0]["feature_map"]["kind"] = "cos"; })); },
                 "unknown feature map 'cos'");
    expect_error([&] { AttentionPlan::parse(with([](auto& j) { j["blocks"][0]["stabilizer"] = "mean"; })); },
                 "unknown stabilizer 'mean'");
    expect_error([&] { AttentionPlan::parse("{not json"); }, "invalid JSON");

    auto bad_rate = AttentionPlan::parse(with([](auto& j) { j["blocks"][0]["rate"] = 0; }));
    expect_error([&] { validate_plan(bad_rate, L, D); }, "attention plan block 0: hybrid rate must be >= 1, got 0");
    auto neg_rate = AttentionPlan::parse(with([](auto& j) { j["blocks"][0]["rate"] = -2; }));
    expect_error([&] { validate_plan(neg_rate, L, D); }, "hybrid rate must be >= 1, got -2");

    const TokenGrid grid{2, 4, 6};
    expect_error([&] { validate_plan(mixed_plan(D), L, D, &grid); },
                 "attention plan block 2: chunk of 3 latent frames is longer than the video (2 frames)");
    auto zero_chunk = AttentionPlan::parse(with([](auto& j) { j["blocks"][2]["chunk"] = 0; }));
    expect_error([&] { validate_plan(zero_chunk, L, D); }, "chunk must be >= 1 latent frame, got 0");

    expect_error([&] { validate_plan(mixed_plan(D), 3, D); },
                 "attention plan: expected 3 block entries (one per model block), got 4");
    expect_error([&] { validate_plan(mixed_plan(D), L, 8); },
                 "attention plan block 0: feature map poly is sized for head dim 16, but the model's head dim is 8");
    expect_error([&] { parse_block_list("0,4", 4); }, "--blocks: block 4 out of range (model has 4 blocks: 0..3)");
    expect_error([&] { parse_block_list("1,x", 4); }, "--blocks: 'x' is not a block index");
    expect_error([&] { uniform_plan(4, D, PlanEntry{}, {9}); }, "block 9 out of range (model has 4 blocks: 0..3)");
    EXPECT_EQ(parse_block_list("2,0", 4), (std::vector<int64_t>{2, 0}));
    EXPECT_TRUE(parse_block_list("all", 4).empty());
}

TEST(CostModel, MatchesFormulas) {
    const int64_t H = 12, D = 128;
    const TokenGrid g{21, 30, 52};
    const double N = 32760;
    PlanEntry soft;
    EXPECT_DOUBLE_EQ(block_attention_flops(soft, H, D, g).total(), 4.0 * H * D * N * N);
    EXPECT_DOUBLE_EQ(teacher_attention_flops(H, D, g), 4.0 * H * D * N * N);
    PlanEntry h;
    h.kind = AttentionKind::Hybrid;
    h.rate = 2;
    h = h.normalized(D);  // poly, hidden 256, P = 2 -> D' = 256
    auto f = block_attention_flops(h, H, D, g);
    EXPECT_DOUBLE_EQ(f.softmax, 4.0 * H * D * N * (N / 2));
    EXPECT_DOUBLE_EQ(f.linear_state, 2.0 * H * 256 * D * (N / 2));
    EXPECT_DOUBLE_EQ(f.linear_apply, 2.0 * H * N * 256 * (D + 1));
    EXPECT_DOUBLE_EQ(f.feature_maps, 2 * 2.0 * H * N * (D * 256 + 256 * 2 * D));
    // Paper: poly maps cost about 2.4M parameters per block for Wan-1.3B (q and k).
    EXPECT_NEAR(2.0 * H * feature_map_params_per_head(h.feature_map, D), 2.4e6, 0.05e6);
    PlanEntry c;
    c.kind = AttentionKind::Chunked;
    c.chunk = 3;
    c.overlap = 1;
    c = c.normalized(D);
    EXPECT_EQ(softmax_pairs(c, g), 1560LL * 1560 * (3 * 3 + 6 * 3 * 4));
    AttentionPlan plan = uniform_plan(30, D, h, {0, 1, 2});
    auto pf = plan_attention_flops(plan, H, D, g);
    EXPECT_NEAR(pf.fraction(), (27 + 3 * f.total() / (4.0 * H * D * N * N)) / 30, 1e-12);
    const auto text = describe_plan_costs(plan, wan_preset("wan2.1-t2v-1.3b"), g);
    EXPECT_NE(text.find("3 of 30 blocks converted"), std::string::npos) << text;
    EXPECT_NE(text.find("% of the teacher's attention FLOPs"), std::string::npos) << text;
}

// --- surgery on the tiny golden model ------------------------------------------------------------------
const std::string kTiny = testing::golden("wan-t2v-tiny");

torch::Tensor golden_forward(WanModel& model, const TensorMap& in) {
    torch::NoGradGuard ng;
    return model->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context"));
}

TEST(Surgery, RateOneAndWholeVideoChunkReproduceGoldenVelocity) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    auto in = load_safetensors(testing::golden("dit_forward.safetensors"));
    const auto& ref = in.at("out.velocity_official");
    auto lm = load_wan_model(kTiny);
    const auto& cfg = lm.model->config();
    for (auto st : {Stabilizer::Lse, Stabilizer::Max}) {
        PlanEntry r1;
        r1.kind = AttentionKind::Hybrid;
        r1.rate = 1;
        r1.stabilizer = st;
        PlanEntry whole;
        whole.kind = AttentionKind::Chunked;
        whole.chunk = 3;  // the golden latents have 3 frames
        whole.stabilizer = st;
        for (const auto& e : {r1, whole}) {
            apply_plan(lm.model, uniform_plan(cfg.num_layers, cfg.head_dim(), e), 3);
            ASSERT_EQ(plan_of(lm.model).num_converted(), cfg.num_layers);
            for (auto impl : {AttentionImpl::Fast, AttentionImpl::Reference}) {
                lm.model->set_attention_impl(impl);
                EXPECT_LE(rel_error(golden_forward(lm.model, in), ref), testing::kGoldenRelTol)
                    << e.describe() << " " << to_string(impl);
            }
        }
    }
}

TEST(Surgery, StudentSaveLoadRoundTrip) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    auto in = load_safetensors(testing::golden("dit_forward.safetensors"));
    auto lm = load_wan_model(kTiny);
    const auto& cfg = lm.model->config();
    auto plan = mixed_plan(cfg.head_dim());
    const auto chunked = plan.blocks[2];
    plan.blocks.resize(cfg.num_layers);  // block 0: hybrid R=4 max poly P=3
    plan.blocks[1] = chunked;            // block 1: causal chunked hedgehog, T_c = 2
    plan.blocks[1].chunk = 2;
    apply_plan(lm.model, plan, 17);
    EXPECT_EQ(plan_of(lm.model), plan);
    const auto names = state_dict(*lm.model);
    EXPECT_TRUE(names.count("blocks.0.self_attn.attn.phi_q.w1"));
    EXPECT_TRUE(names.count("blocks.1.self_attn.attn.phi_k.w"));
    const auto y = golden_forward(lm.model, in);

    const auto dir = testing::temp_dir("student");
    save_student(lm.model, dir);
    EXPECT_TRUE(fs::exists(dir + "/" + kPlanFileName));
    EXPECT_EQ(AttentionPlan::load(dir + "/" + kPlanFileName), plan);
    auto st = load_model_or_student(dir, "", /*seed=*/999);
    ASSERT_TRUE(st.plan.has_value());
    EXPECT_EQ(*st.plan, plan);
    EXPECT_FALSE(st.phi_initialised);
    const auto back = state_dict(*st.loaded.model);
    ASSERT_EQ(back.size(), names.size());
    for (const auto& [n, t] : names) EXPECT_TRUE(torch::equal(back.at(n), t)) << n;
    EXPECT_TRUE(torch::equal(golden_forward(st.loaded.model, in), y));

    // A teacher under the same plan file: phi drawn from the seed, identical to apply_plan with that seed.
    auto tp = load_model_or_student(kTiny, dir + "/" + kPlanFileName, 17);
    EXPECT_TRUE(tp.phi_initialised);
    EXPECT_EQ(*tp.plan, plan);
    for (const auto& [n, t] : state_dict(*tp.loaded.model)) EXPECT_TRUE(torch::equal(t, names.at(n))) << n;
    // A teacher alone: no plan, plain softmax.
    auto teacher = load_model_or_student(kTiny);
    EXPECT_FALSE(teacher.plan.has_value());
    EXPECT_LE(rel_error(golden_forward(teacher.loaded.model, in), in.at("out.velocity_official")),
              testing::kGoldenRelTol);
    // A student whose stored phi were removed is rejected (its own plan requires them).
    auto tensors = load_safetensors(dir + "/diffusion_pytorch_model.safetensors");
    Metadata meta;
    load_safetensors(dir + "/diffusion_pytorch_model.safetensors", &meta);
    tensors.erase("blocks.0.self_attn.attn.phi_q.w1");
    save_safetensors(dir + "/diffusion_pytorch_model.safetensors", tensors, meta);
    expect_error([&] { load_model_or_student(dir); }, "missing tensor 'blocks.0.self_attn.attn.phi_q.w1'");
}

TEST(PlanCli, UniformWritesAValidPlanAndRejectsBadOptions) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    const auto dir = testing::temp_dir("plan_cli");
    auto r = testing::run_surgeon("plan uniform --model " + kTiny +
                                  " --kind hybrid --rate 2 --blocks 1 --feature-map hedgehog --stabilizer max --out " +
                                  dir + "/p.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto plan = AttentionPlan::load(dir + "/p.json");
    ASSERT_EQ(plan.blocks.size(), 2u);
    EXPECT_EQ(plan.blocks[0].kind, AttentionKind::Softmax);
    EXPECT_EQ(plan.blocks[1].kind, AttentionKind::Hybrid);
    EXPECT_EQ(plan.blocks[1].rate, 2);
    EXPECT_EQ(plan.blocks[1].feature_map.kind, FeatureMapKind::Hedgehog);
    EXPECT_EQ(plan.blocks[1].stabilizer, Stabilizer::Max);
    r = testing::run_surgeon("plan uniform --model " + kTiny + " --kind chunked --chunk 2 --overlap 1 --causal --out " +
                             dir + "/c.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(AttentionPlan::load(dir + "/c.json").blocks[0].causal);

    r = testing::run_surgeon("plan uniform --model " + kTiny + " --kind hybrid --rate 0 --out " + dir + "/x.json");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("hybrid rate must be >= 1, got 0"), std::string::npos) << r.err;
    r = testing::run_surgeon("plan uniform --model " + kTiny + " --kind hybrid --blocks 5 --out " + dir + "/x.json");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("block 5 out of range (model has 2 blocks: 0..1)"), std::string::npos) << r.err;
    r = testing::run_surgeon("plan uniform --model " + kTiny + " --kind linear --rate 2 --out " + dir + "/x.json");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("--rate applies to --kind hybrid only"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/x.json"));
}

}  // namespace
}  // namespace surgeon
