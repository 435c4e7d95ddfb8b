// Stage 1 building blocks: the attention recorder captures exactly what a block's core sees and returns, and
// value distillation of phi lowers the held-out error (and cannot change options without parameters).
#include <filesystem>

#include "attention/softmax_attention.h"
#include "core/error.h"
#include "model/model_io.h"
#include "surgery/stage1_trainer.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
const std::string kTiny = testing::golden("wan-t2v-tiny");

TokenGrid grid_of(const WanConfig& cfg, const torch::Tensor& latents) {
    return token_grid(cfg, latents.size(2), latents.size(3), latents.size(4));
}

// Records the tiny golden model's cores on `n` random latents at spread-out timesteps (seeded).
std::map<int64_t, std::vector<AttentionSample>> record_tiny(LoadedModel& lm, const TensorMap& in, int n, int seed) {
    torch::NoGradGuard ng;
    const auto& lat = in.at("in.latents");
    AttentionRecorder rec(grid_of(lm.model->config(), lat));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (int i = 0; i < n; ++i) {
        auto x = at::randn(lat.sizes(), gen, lat.options());
        auto t = torch::full({lat.size(0)}, 50.0 + 900.0 * i / std::max(1, n - 1));
        lm.model->forward(x, t, in.at("in.context"), &rec.tap());
    }
    return rec.samples();
}

TEST(Distill, RecorderSeesWhatTheCoreSees) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    auto in = load_safetensors(testing::golden("dit_forward.safetensors"));
    auto lm = load_wan_model(kTiny);
    const auto& cfg = lm.model->config();
    const auto grid = grid_of(cfg, in.at("in.latents"));
    AttentionRecorder all(grid), one(grid, {1});
    torch::NoGradGuard ng;
    lm.model->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context"), &all.tap());
    lm.model->forward(in.at("in.latents"), in.at("in.timestep"), in.at("in.context"), &one.tap());
    ASSERT_EQ(all.samples().size(), static_cast<size_t>(cfg.num_layers));
    ASSERT_EQ(one.samples().size(), 1u);
    ASSERT_EQ(one.samples().count(1), 1u);
    for (const auto& [b, list] : all.samples()) {
        ASSERT_EQ(list.size(), 1u);
        const auto& s = list[0];
        EXPECT_EQ(s.q.sizes(), (std::vector<int64_t>{in.at("in.latents").size(0), grid.tokens(), cfg.num_heads, cfg.head_dim()}));
        // The teacher's core on the recorded q, k, v gives the recorded output: these are its true inputs.
        SoftmaxAttentionImpl core;
        EXPECT_LE(testing::rel_error(core.forward(s.q, s.k, s.v, s.grid), s.y), 1e-6) << "block " << b;
        // q and k are not the same tensor (norm + RoPE applied separately) and the output is not v.
        EXPECT_GT(testing::rel_error(s.q, s.k), 1e-3);
        EXPECT_GT(testing::rel_error(s.y, s.v), 1e-3);
    }
    EXPECT_TRUE(torch::equal(one.samples().at(1)[0].y, all.samples().at(1)[0].y));
}

TEST(Distill, TrainingPhiLowersTheHeldOutValueError) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    auto in = load_safetensors(testing::golden("dit_forward.safetensors"));
    auto lm = load_wan_model(kTiny);
    auto train = record_tiny(lm, in, 6, 1);
    auto heldout = record_tiny(lm, in, 3, 2);
    PlanEntry linear;
    linear.kind = AttentionKind::Linear;  // poly, the paper's map: all the attention comes from phi
    PlanEntry hybrid = linear;
    hybrid.kind = AttentionKind::Hybrid;
    hybrid.rate = 4;
    DistillOptions opt;
    opt.steps = 150;
    opt.lr = 3e-3;
    for (const auto& e : {linear, hybrid}) {
        for (int64_t b : {0, 1}) {
            auto r = distill_block(e, train.at(b), heldout.at(b), opt);
            EXPECT_EQ(r.train_l1.size(), 150u);
            EXPECT_LT(r.heldout_l1, 0.8 * r.heldout_l1_init) << e.describe() << " block " << b << ": "
                                                               << r.heldout_l1_init << " -> " << r.heldout_l1;
            // The reported error is the core's, measured again.
            EXPECT_NEAR(value_l1(*r.core, heldout.at(b)), r.heldout_l1, 1e-12);
        }
    }
}

TEST(Distill, StageOneOrdersRatesByHeldOutError) {
    // Every (block, option) trained at once from one recording: the held-out error must order R2 < R4 < R8 (more
    // exact softmax keys, less to approximate) and R2, R4 below pure linear attention, and every option must improve
    // on its fresh, calibrated start. (A linear branch that drowns the softmax keys makes every option distil to the
    // linear error: this is the test that catches it.) R8 vs linear is not ordered: with 1/8 of the keys exact and
    // diffuse attention they are within a few percent of each other, here and on the bundled teacher
    // (models/synth-student/report/block_errors.json: R8 0.061-0.096, linear 0.056-0.096).
    // Single-threaded so the sums (and so the margins) are the same on every machine.
    SURGEON_REQUIRE_GOLDEN(kTiny);
    at::set_num_threads(1);
    auto in = load_safetensors(testing::golden("dit_forward.safetensors"));
    auto lm = load_wan_model(kTiny);
    auto train = record_tiny(lm, in, 6, 1);
    auto heldout = record_tiny(lm, in, 3, 2);
    const int64_t H = lm.model->config().num_heads, D = lm.model->config().head_dim();
    std::vector<PlanEntry> options;
    for (int64_t R : {2, 4, 8}) {
        PlanEntry e;
        e.kind = AttentionKind::Hybrid;
        e.rate = R;
        options.push_back(e.normalized(D));
    }
    PlanEntry lin;
    lin.kind = AttentionKind::Linear;
    options.push_back(lin.normalized(D));
    StageOneOptions o;
    o.lr = 3e-3;
    StageOneTrainer t({0, 1}, options, H, D, o, torch::kCPU), fresh({0, 1}, options, H, D, o, torch::kCPU);
    std::map<int64_t, AttentionSample> first = {{0, train.at(0)[0]}, {1, train.at(1)[0]}};
    t.calibrate(first);
    fresh.calibrate(first);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    torch::Tensor l0, l;
    for (int step = 0; step < 200; ++step) {
        std::map<int64_t, AttentionSample> s = {{0, train.at(0)[step % 6]}, {1, train.at(1)[step % 6]}};
        l = t.update(s, gen);
        if (step == 0) l0 = l;
    }
    EXPECT_EQ(l.sizes(), (std::vector<int64_t>{2, 4}));
    const auto e = t.heldout_l1(heldout), e0 = fresh.heldout_l1(heldout);
    for (int b = 0; b < 2; ++b) {
        for (auto [i, j] : std::vector<std::pair<int, int>>{{0, 1}, {1, 2}, {0, 3}, {1, 3}})
            EXPECT_LT(e[b][i], e[b][j]) << "block " << b << ": " << options[i].describe() << " " << e[b][i] << " vs "
                                        << options[j].describe() << " " << e[b][j];
        for (int i = 0; i < 4; ++i)
            EXPECT_LT(e[b][i], 0.9 * e0[b][i]) << "block " << b << " " << options[i].describe() << ": " << e0[b][i]
                                               << " -> " << e[b][i];
    }
    // Save + load restores every core and the optimiser exactly: the next update is bitwise the same.
    const auto dir = testing::temp_dir("stage1_ckpt");
    t.save(dir);
    StageOneTrainer back({0, 1}, options, H, D, o, torch::kCPU);
    back.load(dir);
    std::map<int64_t, AttentionSample> s = {{0, train.at(0)[1]}, {1, train.at(1)[1]}};
    auto g1 = at::make_generator<at::CPUGeneratorImpl>(9), g2 = at::make_generator<at::CPUGeneratorImpl>(9);
    t.update(s, g1);
    back.update(s, g2);
    for (size_t bi = 0; bi < 2; ++bi)
        for (size_t oi = 0; oi < 4; ++oi) {
            auto p1 = t.core(bi, oi)->parameters(), p2 = back.core(bi, oi)->parameters();
            for (size_t k = 0; k < p1.size(); ++k) EXPECT_TRUE(torch::equal(p1[k], p2[k]));
        }
}

TEST(Distill, ScoreLossTrainsHybridAndLinearOptions) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    at::set_num_threads(1);
    auto in = load_safetensors(testing::golden("dit_forward.safetensors"));
    auto lm = load_wan_model(kTiny);
    auto train = record_tiny(lm, in, 4, 1);
    const int64_t H = lm.model->config().num_heads, D = lm.model->config().head_dim();
    PlanEntry r2;
    r2.kind = AttentionKind::Hybrid;
    r2.rate = 2;
    PlanEntry lin;
    lin.kind = AttentionKind::Linear;
    StageOneOptions o;
    o.lr = 3e-3;
    o.loss = DistillLoss::Score;
    StageOneTrainer t({0}, {r2.normalized(D), lin.normalized(D)}, H, D, o, torch::kCPU);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    torch::Tensor first, last;
    for (int step = 0; step < 100; ++step) {
        auto l = t.update({{0, train.at(0)[step % 4]}}, gen);
        if (step < 4) first = first.defined() ? first + l : l;
        if (step >= 96) last = last.defined() ? last + l : l;
    }
    EXPECT_TRUE((last < first).all().item<bool>()) << first << last;
    EXPECT_EQ(parse_distill_loss("score"), DistillLoss::Score);
    EXPECT_NE(testing::error_of([] { parse_distill_loss("l2"); }).find("unknown distillation loss 'l2'"),
              std::string::npos);
}

TEST(Distill, OptionsWithoutFreedomAndBadInput) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    auto in = load_safetensors(testing::golden("dit_forward.safetensors"));
    auto lm = load_wan_model(kTiny);
    auto s = record_tiny(lm, in, 3, 3);
    const auto& samples = s.at(0);
    // elu1 has no parameters: measured, not trained.
    PlanEntry elu;
    elu.kind = AttentionKind::Linear;
    elu.feature_map.kind = FeatureMapKind::Elu1;
    auto r = distill_block(elu, samples, samples, DistillOptions{});
    EXPECT_TRUE(r.train_l1.empty());
    EXPECT_EQ(r.heldout_l1, r.heldout_l1_init);
    EXPECT_GT(r.heldout_l1, 0);
    // Rate 1: every key is a softmax key, the core is the teacher whatever phi is: zero error, untrained or not.
    PlanEntry r1;
    r1.kind = AttentionKind::Hybrid;
    r1.rate = 1;
    DistillOptions few;
    few.steps = 3;
    r = distill_block(r1, samples, samples, few);
    EXPECT_LT(r.heldout_l1_init, 1e-6);
    EXPECT_LT(r.heldout_l1, 1e-6);
    // One-line errors.
    EXPECT_NE(testing::error_of([&] { distill_block(PlanEntry{}, samples, samples, few); })
                  .find("the softmax option has nothing to distil"),
              std::string::npos);
    EXPECT_NE(testing::error_of([&] { distill_block(r1, {}, samples, few); }).find("need training and held-out samples"),
              std::string::npos);
    auto odd = samples;
    odd[0].y = odd[0].y.narrow(2, 0, 1);
    EXPECT_NE(testing::error_of([&] { distill_block(r1, odd, samples, few); }).find("samples must share"),
              std::string::npos);
}

}  // namespace
}  // namespace surgeon
