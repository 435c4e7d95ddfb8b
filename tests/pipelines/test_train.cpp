// `surgeon train` on a tiny config: the loss falls, the exported model loads and generates, and a run that is
// stopped and resumed ends with the same weights as an uninterrupted one.
#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "pipelines/trainer.h"
#include "world/world.h"
#include "world/text_encoder.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;
namespace fs = std::filesystem;

namespace {
TrainConfig tiny(int64_t steps) {
    auto c = TrainConfig::from_json(nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json")));
    c.steps = steps;
    return c;
}
// Trains `t` without EMA (so the exported weights are the trained ones) into a fresh temp folder, checks the
// loss stayed finite and loads the model.
SynthModel train_and_load(TrainConfig t, const std::string& name) {
    t.ema = 0;
    auto dir = temp_dir(name);
    auto r = train_synth_model(t, dir, false, false);
    EXPECT_TRUE(std::isfinite(r.final_loss)) << name;
    return load_synth_model(dir + "/model");
}

// Largest difference between two models' block-0 query weights (0 = the runs trained the same).
double block0_q_difference(const SynthModel& a, const SynthModel& b) {
    return (a.dit->block(0)->self_attn->q->weight - b.dit->block(0)->self_attn->q->weight).abs().max().item<double>();
}
}  // namespace

TEST(Train, LossFallsAndModelGenerates) {
    auto dir = temp_dir("train");
    auto r = train_synth_model(tiny(60), dir, false, false);
    EXPECT_EQ(r.steps_done, 60);
    auto l = read_losses(dir);
    ASSERT_EQ(l.size(), 12u);
    EXPECT_LT(l.back(), 0.7 * l.front()) << "first " << l.front() << " last " << l.back();
    EXPECT_TRUE(fs::exists(dir + "/loss.png"));
    auto m = load_synth_model(dir + "/model");
    EXPECT_EQ(m.dit->config().dim, 32);
    SampleOptions o = m.settings.sampling;
    auto v = m.generate({"a small red circle staying still on a gray background"}, {3}, o);
    EXPECT_EQ(v.sizes(), (std::vector<int64_t>{1, 3, 4, 16, 16}));
    EXPECT_LE(v.abs().max().item<double>(), 1.0);
    // Same prompt and seed -> same video.
    auto v2 = m.generate({"a small red circle staying still on a gray background"}, {3}, o);
    EXPECT_TRUE(torch::equal(v, v2));
    // Ancestral Euler (eta > 0): reproducible per seed, the same video alone or in a batch (each video's fresh noise
    // has its own stream), and not the ODE's video.
    o.solver = SolverKind::Euler;
    const auto ode = m.generate({"a small red circle staying still on a gray background"}, {3}, o);
    o.eta = 1.0;
    const auto a1 = m.generate({"a small red circle staying still on a gray background"}, {3}, o);
    EXPECT_TRUE(torch::equal(a1, m.generate({"a small red circle staying still on a gray background"}, {3}, o)));
    const auto batch = m.generate({"a small red circle staying still on a gray background", "a large blue square bouncing fast on a black background"}, {3, 4}, o);
    EXPECT_TRUE(torch::allclose(batch[0], a1[0], 1e-4, 1e-5)) << (batch[0] - a1[0]).abs().max().item<double>();
    EXPECT_GT((a1 - ode).abs().max().item<double>(), 1e-3);
    o.solver = SolverKind::UniPC;
    EXPECT_THROW(m.generate({"a small red circle staying still on a gray background"}, {3}, o), Error);
}

TEST(Train, ResumeAfterStopMatchesUninterruptedRun) {
  for (const std::string optimizer : {"flat", "torch"}) {
    SCOPED_TRACE(optimizer);
    auto a = temp_dir("train_full_" + optimizer), b = temp_dir("train_resume_" + optimizer);
    auto c = tiny(40);
    c.optimizer = optimizer;
    train_synth_model(c, a, false, false);
    train_synth_model(c, b, false, false, /*stop_after=*/20);  // "killed" after the checkpoint at step 20
    train_synth_model(c, b, true, false);   // resumed
    auto sa = load_safetensors(a + "/checkpoint/state.safetensors");
    auto sb = load_safetensors(b + "/checkpoint/state.safetensors");
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto& [n, t] : sa)
        if (n != "history") EXPECT_LE(rel_error(sb.at(n), t), 1e-5) << n;
    EXPECT_EQ(read_losses(a).size(), read_losses(b).size());
  }
}

// The flat optimiser (fast path) and torch's AdamW (slow twin) train the same model to the same weights, EMA
// and optimiser state (checkpoint format shared), up to float summation order.
TEST(Train, FlatAndTorchOptimisersAgree) {
    auto a = temp_dir("train_opt_flat"), b = temp_dir("train_opt_torch");
    auto c = tiny(30);
    train_synth_model(c, a, false, false);
    c.optimizer = "torch";
    train_synth_model(c, b, false, false);
    auto sa = load_safetensors(a + "/checkpoint/state.safetensors");
    auto sb = load_safetensors(b + "/checkpoint/state.safetensors");
    ASSERT_EQ(sa.size(), sb.size());
    int compared = 0;
    for (const auto& [n, t] : sa) {
        if (n == "history" || t.numel() == 0 || t.abs().max().item<double>() == 0) continue;
        EXPECT_LE(rel_error(sb.at(n), t), 1e-4) << n;
        ++compared;
    }
    EXPECT_GT(compared, 100);
    auto la = read_losses(a), lb = read_losses(b);
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-4 * la[i]);
}

TEST(Train, RejectsBadConfigs) {
    auto j = nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json"));
    j["model"]["in_dim"] = 4;
    EXPECT_THROW(TrainConfig::from_json(j), Error);
    j = nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json"));
    j["train"]["lr"] = -1;
    EXPECT_THROW(TrainConfig::from_json(j), Error);
    j["train"]["lr"] = 1e-3;
    j["train"]["sigma_sampling"] = "weird";
    EXPECT_THROW(TrainConfig::from_json(j), Error);
    j["train"]["sigma_sampling"] = "uniform";
    j["train"]["optimizer"] = "sgd";
    EXPECT_NE(error_of([&] { TrainConfig::from_json(j); }).find("optimizer must be flat or torch"), std::string::npos);
}

// Training never draws SynthBench's held-out clips: config seed 7 would (world seeds 7e9 + n are the evaluation's),
// its neighbours do not; the check runs again when training starts, after --steps may have grown the range.
TEST(Train, RefusesSeedsThatDrawTheEvaluationClips) {
    auto j = nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json"));
    for (uint64_t ok : {6ull, 8ull, 10ull}) {
        j["train"]["seed"] = ok;
        EXPECT_NO_THROW(TrainConfig::from_json(j)) << ok;
    }
    j["train"]["seed"] = 7;
    const auto err = error_of([&] { TrainConfig::from_json(j); });
    EXPECT_NE(err.find("seed 7 draws world seeds 7000000000.."), std::string::npos) << err;
    EXPECT_NE(err.find("held-out evaluation seeds [7000000000, 8000000000)"), std::string::npos) << err;
    // The eval's first clip is the world seed a seed-7 run would train on first.
    EXPECT_EQ(world::eval_world_seed(0), world::train_world_seed(7, 0));
    j["train"]["seed"] = 6;
    auto c = TrainConfig::from_json(j);
    c.batch = 2;
    c.steps = 600000000;  // 1.2e9 clips: past the 1e9 of seed 6, into the evaluation's
    EXPECT_NE(error_of([&] { train_synth_model(c, temp_dir("train_seed_range"), false, false); }).find("exceeds the"),
              std::string::npos);
    j["train"]["seed"] = static_cast<uint64_t>(UINT64_MAX / 1000000000ull);  // seed * 1e9 would wrap around
    EXPECT_NE(error_of([&] { TrainConfig::from_json(j); }).find("seed must be below"), std::string::npos);
}

// init_from: the run starts from the given folder's weights (a 1-step run at a vanishing learning rate exports
// them unchanged, where a fresh init differs), and a folder of another architecture is refused by tensor name.
TEST(Train, InitFromStartsAtTheFoldersWeights) {
    auto a = temp_dir("train_init_a"), b = temp_dir("train_init_b"), fresh = temp_dir("train_init_fresh");
    train_synth_model(tiny(20), a, false, false);
    auto c = tiny(1);
    c.lr = 1e-20;
    c.seed = 5;  // another data stream and init seed: only init_from can make the weights agree
    train_synth_model(c, fresh, false, false);
    c.init_from = a + "/model";
    train_synth_model(c, b, false, false);
    auto wa = load_synth_model(a + "/model"), wb = load_synth_model(b + "/model"), wf = load_synth_model(fresh + "/model");
    auto sa = state_dict(*wa.dit), sb = state_dict(*wb.dit), sf = state_dict(*wf.dit);
    double max_diff_init = 0, max_diff_fresh = 0;
    for (const auto& [n, t] : sa) {
        max_diff_init = std::max(max_diff_init, (t - sb.at(n)).abs().max().item<double>());
        max_diff_fresh = std::max(max_diff_fresh, (t - sf.at(n)).abs().max().item<double>());
    }
    EXPECT_LE(max_diff_init, 1e-6);
    EXPECT_GT(max_diff_fresh, 1e-2);
    auto ta = world::text_encoder_state(wa.text_encoder), tb = world::text_encoder_state(wb.text_encoder);
    for (const auto& [n, t] : ta) EXPECT_LE((t - tb.at(n)).abs().max().item<double>(), 1e-6) << n;
    // A resume without --init-from keeps the warm start in the run's record.
    auto more = tiny(2);
    more.lr = 1e-20;
    more.seed = 5;
    train_synth_model(more, b, /*resume=*/true, false);
    auto rec = nlohmann::json::parse(read_text_file(b + "/train_config.json"));
    EXPECT_EQ(rec["train"]["init_from"].get<std::string>(), a + "/model");
    EXPECT_EQ(rec["train"]["steps"].get<int64_t>(), 2);
    // Another architecture: a clear error that names a tensor.
    auto wide = tiny(1);
    wide.model.ffn_dim = 48;
    wide.init_from = a + "/model";
    auto err = error_of([&] { train_synth_model(wide, temp_dir("train_init_bad"), false, false); });
    EXPECT_NE(err.find("blocks.0.ffn.0."), std::string::npos) << err;
    EXPECT_NE(err.find("wrong shape"), std::string::npos) << err;
}

// Every trainable tensor of the DiT and of the text encoder moves away from its initialisation, for both
// optimisers (the text encoder was once handed to the optimiser as detached copies and never trained).
TEST(Train, EveryParameterIsTrained) {
    for (const std::string optimizer : {"flat", "torch"}) {
        SCOPED_TRACE(optimizer);
        auto dir = temp_dir("train_all_params_" + optimizer);
        auto c = tiny(5);
        c.optimizer = optimizer;
        c.checkpoint_every = 5;
        auto init = init_synth_model(c);
        train_synth_model(c, dir, false, false);
        auto st = load_safetensors(dir + "/checkpoint/state.safetensors");
        int checked = 0;
        for (const auto& [n, t] : state_dict(*init.dit)) {
            EXPECT_GT((st.at("dit." + n) - t).abs().max().item<double>(), 0.0) << n;
            ++checked;
        }
        for (const auto& [n, t] : world::text_encoder_state(init.text_encoder, "")) {
            EXPECT_GT((st.at("text_encoder." + n) - t).abs().max().item<double>(), 0.0) << n;
            ++checked;
        }
        EXPECT_GT(checked, 80);
    }
}

// A diverging run stops with a one-line error naming the steps (the loss is checked once per log window).
TEST(Train, DivergingRunStopsWithAClearError) {
    auto c = tiny(20);
    c.lr = 1e8;
    c.warmup = 1;
    auto err = error_of([&] { train_synth_model(c, temp_dir("train_diverge"), false, false); });
    EXPECT_NE(err.find("train: loss became"), std::string::npos) << err;
    EXPECT_NE(err.find("lower the learning rate"), std::string::npos) << err;
}

// Position channels (SynthSettings::position_channels): the planes hold frame, row and column on [-1, 1].
TEST(PositionChannels, PlanesAreLinearRampsOverTheClip) {
    auto p = position_planes(4, 3, 5);
    ASSERT_EQ(p.sizes(), (std::vector<int64_t>{3, 4, 3, 5}));
    EXPECT_DOUBLE_EQ(p[0][0][1][2].item<double>(), -1.0);  // first frame
    EXPECT_DOUBLE_EQ(p[0][3][1][2].item<double>(), 1.0);   // last frame
    EXPECT_NEAR(p[0][1][0][0].item<double>(), -1.0 / 3, 1e-6);
    EXPECT_DOUBLE_EQ(p[1][2][0][4].item<double>(), -1.0);  // top row
    EXPECT_DOUBLE_EQ(p[1][2][1][4].item<double>(), 0.0);   // middle row
    EXPECT_DOUBLE_EQ(p[2][2][1][0].item<double>(), -1.0);  // left column
    EXPECT_DOUBLE_EQ(p[2][2][1][4].item<double>(), 1.0);   // right column
    // Frame plane constant within a frame; row plane constant over frames and columns.
    EXPECT_TRUE(torch::equal(p[0][2], torch::full({3, 5}, p[0][2][0][0].item<float>())));
    EXPECT_TRUE(torch::equal(p[1][0], p[1][3]));
    EXPECT_DOUBLE_EQ(position_planes(1, 1, 2)[0].abs().max().item<double>(), 0.0);  // one frame, one row: 0
    EXPECT_NE(error_of([] { position_planes(0, 4, 4); }).find("positive size"), std::string::npos);
}

// A tiny run with position channels trains, exports a folder that records them, and loads back into a model
// whose sampler feeds the planes (in_dim 6 = 3 RGB + 3 positions; a wrong record is an error naming in_dim).
TEST(PositionChannels, TrainExportLoadGenerate) {
    auto dir = temp_dir("train_pos");
    auto c = tiny(20);
    c.position_channels = true;
    c.model.in_dim = 6;
    train_synth_model(c, dir, false, false);
    auto m = load_synth_model(dir + "/model");
    EXPECT_TRUE(m.settings.position_channels);
    EXPECT_EQ(m.dit->config().in_dim, 6);
    SampleOptions o = m.settings.sampling;
    o.steps = 3;
    auto v = m.generate({"a small red circle moving left fast on a gray background"}, {1}, o);
    EXPECT_EQ(v.sizes(), (std::vector<int64_t>{1, 3, 4, 16, 16}));
    // sample_video with y is the model run on [x, y]: one Euler step by hand matches.
    o.solver = SolverKind::Euler;
    o.steps = 1;
    o.guidance = 1.0;
    auto x1 = m.generate({"a small red circle moving left fast on a gray background"}, {1}, o);
    torch::NoGradGuard ng;
    auto ctx = m.encode({"a small red circle moving left fast on a gray background"});
    auto x = m.noise(1);
    auto y = position_planes(4, 16, 16).unsqueeze(0);
    auto vel = m.dit->forward(torch::cat({x, y}, 1), torch::full({1}, 1000.0), ctx);
    EXPECT_LE(rel_error(x1, (x - vel).clamp(-1, 1)), 1e-5);
    // The record must fit the DiT.
    auto js = nlohmann::json::parse(read_text_file(dir + "/model/surgeon.json"));
    js.erase("position_channels");
    atomic_write(dir + "/model/surgeon.json", [&](std::ostream& os) { os << js.dump(); });
    auto err = error_of([&] { load_synth_model(dir + "/model"); });
    EXPECT_NE(err.find("in_dim 6"), std::string::npos) << err;
    EXPECT_NE(err.find("expected in_dim 3"), std::string::npos) << err;
    // A config whose in_dim does not fit its position_channels is rejected before anything runs.
    auto bad = nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json"));
    bad["position_channels"] = true;
    err = error_of([&] { TrainConfig::from_json(bad); });
    EXPECT_NE(err.find("in_dim must be 6"), std::string::npos) << err;
}

// Warm-starting a position-channel model from one without: the new patch-embedding inputs start at zero, so the
// first model computes what the source computed (the planes change nothing until training moves those weights).
TEST(PositionChannels, WarmStartFromAModelWithoutThemKeepsItsFunction) {
    auto src_dir = temp_dir("train_pos_src");
    train_synth_model(tiny(10), src_dir, false, false);
    auto c = tiny(1);
    c.position_channels = true;
    c.model.in_dim = 6;
    c.init_from = src_dir + "/model";
    c.lr = 1e-12;  // one step that moves nothing measurable
    auto dir = temp_dir("train_pos_warm");
    train_synth_model(c, dir, false, false);
    auto src = load_synth_model(src_dir + "/model"), warm = load_synth_model(dir + "/model");
    ASSERT_TRUE(warm.settings.position_channels);
    auto w = warm.dit->patch_embedding->weight;
    EXPECT_LE(w.narrow(1, 3, 3).abs().max().item<double>(), 1e-9);
    torch::NoGradGuard ng;
    auto x = torch::randn({2, 3, 4, 16, 16});
    auto t = torch::tensor({300.0, 900.0});
    auto ctx = src.encode({"a large blue square moving up slowly on a black background", ""});
    // (The exported EMA mixes the start and the step-1 weights; both equal the source to ~lr.)
    EXPECT_LE(rel_error(warm.velocity(x, t, warm.encode({"a large blue square moving up slowly on a black background", ""})),
                        src.velocity(x, t, ctx)), 1e-4);
}

// position_init_std: on a warm start the position-channel weights are drawn from N(0, std^2) (RMS near std, the
// same draw for the same seed) while every other weight is the source's; it needs position channels and a warm start.
TEST(PositionChannels, InitStdRedrawsOnlyThePositionWeights) {
    auto src_dir = temp_dir("train_pos_std_src");
    train_synth_model(tiny(5), src_dir, false, false);
    auto run = [&](const std::string& name) {
        auto c = tiny(1);
        c.position_channels = true;
        c.model.in_dim = 6;
        c.init_from = src_dir + "/model";
        c.position_init_std = 0.05;
        c.lr = 1e-12;
        c.ema = 0;  // export the step-1 weights themselves
        auto dir = temp_dir(name);
        train_synth_model(c, dir, false, false);
        return load_synth_model(dir + "/model");
    };
    auto a = run("train_pos_std_a"), b = run("train_pos_std_b");
    auto src = load_synth_model(src_dir + "/model");
    auto wa = a.dit->patch_embedding->weight.detach(), wb = b.dit->patch_embedding->weight.detach();
    auto ws = src.dit->patch_embedding->weight.detach();
    const double rms = wa.narrow(1, 3, 3).pow(2).mean().sqrt().item<double>();
    EXPECT_NEAR(rms, 0.05, 0.005);
    EXPECT_LE((wa.narrow(1, 3, 3) - wb.narrow(1, 3, 3)).abs().max().item<double>(), 1e-6);  // seeded
    // The stored weights are bf16: the RGB columns agree with the source to its rounding.
    EXPECT_LE((wa.narrow(1, 0, 3) - ws).abs().max().item<double>(), 1e-6);
    EXPECT_LE((a.dit->head->head->weight - src.dit->head->head->weight).abs().max().item<double>(), 1e-6);

    auto c = tiny(1);
    c.position_init_std = 0.05;
    auto err = error_of([&] { TrainConfig::from_json(c.to_json()); });
    EXPECT_NE(err.find("position_init_std needs"), std::string::npos) << err;
    c.position_channels = true;
    c.model.in_dim = 6;
    err = error_of([&] { train_synth_model(c, temp_dir("train_pos_std_fresh"), false, false); });
    EXPECT_NE(err.find("applies to a warm start"), std::string::npos) << err;
}

// text_pos_init_std: on a warm start the text encoder's position embedding is redrawn from N(0, std^2) (seeded), the
// rest of the encoder is the source's; without a warm start it is an error (fresh encoders start at N(0, 1)).
TEST(Train, TextPosInitStdRedrawsOnlyTheTextPositions) {
    auto src_dir = temp_dir("train_tpos_src");
    train_synth_model(tiny(5), src_dir, false, false);
    auto run = [&](const std::string& name) {
        auto c = tiny(1);
        c.init_from = src_dir + "/model";
        c.text_pos_init_std = 0.7;
        c.lr = 1e-12;
        c.ema = 0;
        auto dir = temp_dir(name);
        train_synth_model(c, dir, false, false);
        return load_synth_model(dir + "/model");
    };
    auto a = run("train_tpos_a"), b = run("train_tpos_b");
    auto src = load_synth_model(src_dir + "/model");
    auto sa = world::text_encoder_state(a.text_encoder), sb = world::text_encoder_state(b.text_encoder),
         ss = world::text_encoder_state(src.text_encoder);
    const auto& pa = sa.at("text_encoder.pos_embedding");
    EXPECT_NEAR(pa.pow(2).mean().sqrt().item<double>(), 0.7, 0.05);
    EXPECT_LE((pa - sb.at("text_encoder.pos_embedding")).abs().max().item<double>(), 1e-6);  // seeded
    EXPECT_GT((pa - ss.at("text_encoder.pos_embedding")).abs().max().item<double>(), 0.1);
    EXPECT_LE((sa.at("text_encoder.token_embedding.weight") - ss.at("text_encoder.token_embedding.weight")).abs().max().item<double>(), 1e-6);
    auto c = tiny(1);
    c.text_pos_init_std = 0.7;
    auto err = error_of([&] { train_synth_model(c, temp_dir("train_tpos_fresh"), false, false); });
    EXPECT_NE(err.find("applies to a warm start"), std::string::npos) << err;
}

// swap_contrast: the batch carries, for exactly the samples with a non-empty prompt and something to swap, that
// prompt with "moving left/right/up/down" swapped (the time-reversed clip's prompt), with the gradient's two colours
// swapped (the mirrored background's prompt) or with two objects' colours or shapes exchanged; each kind alone swaps
// only its words, all three together are each used; the term changes training.
TEST(Train, SwapContrastSwapsTheOrderWords) {
    auto swap_dir = [](const std::string& p) {
        static const std::map<std::string, std::string> rev{
            {"moving left", "moving right"}, {"moving right", "moving left"}, {"moving up", "moving down"}, {"moving down", "moving up"}};
        std::string out;
        for (size_t i = 0; i < p.size();) {
            bool hit = false;
            for (const auto& [a, r] : rev)
                if (p.compare(i, a.size(), a) == 0) {
                    out += r, i += a.size(), hit = true;
                    break;
                }
            if (!hit) out += p[i++];
        }
        return out;
    };
    auto swap_grad = [](const std::string& p) {
        static const std::regex g("on a (\\w+) to (\\w+) (horizontal|vertical) gradient");
        return std::regex_replace(p, g, "on a $2 to $1 $3 gradient");
    };
    // Two objects' colours or shapes exchanged, by rewriting the prompt's two "a SIZE COLOUR SHAPE" phrases.
    auto swap_binding = [](const std::string& p) {
        static const std::regex obj("a (small|large) (\\w+) (circle|square|triangle|diamond)");
        std::vector<std::smatch> m;
        for (auto it = std::sregex_iterator(p.begin(), p.end(), obj); it != std::sregex_iterator(); ++it) m.push_back(*it);
        std::vector<std::string> out;
        if (m.size() != 2) return out;
        for (int g : {2, 3}) {
            if (m[0][g] == m[1][g]) continue;
            std::string q = p;  // replace the later one first so the earlier offsets stay valid
            q.replace(m[1].position(g), m[1].length(g), m[0][g].str());
            q.replace(m[0].position(g), m[0].length(g), m[1][g].str());
            out.push_back(q);
        }
        return out;
    };
    auto c = tiny(1);
    c.batch = 64;
    c.cfg_dropout = 0.2;
    c.swap_contrast = 0.5;
    using Kinds = std::vector<std::string>;
    for (const Kinds& kinds : {Kinds{"direction"}, Kinds{"gradient"}, Kinds{"binding"}, Kinds{"direction", "gradient", "binding"}}) {
        c.swap_kinds = kinds;
        auto has = [&](const char* k) { return std::find(kinds.begin(), kinds.end(), k) != kinds.end(); };
        const auto b = make_train_batch(c, 3);
        std::vector<int64_t> want;
        std::map<int64_t, std::vector<std::pair<std::string, std::string>>> candidates;  // sample -> (kind, prompt)
        for (int64_t i = 0; i < c.batch; ++i) {
            const auto& p = b.prompts[i];
            if (p.empty()) continue;
            auto& cand = candidates[i];
            if (has("direction") && swap_dir(p) != p) cand.push_back({"direction", swap_dir(p)});
            if (has("gradient") && swap_grad(p) != p) cand.push_back({"gradient", swap_grad(p)});
            if (has("binding"))
                for (auto& q : swap_binding(p)) cand.push_back({"binding", q});
            if (!cand.empty()) want.push_back(i);
        }
        ASSERT_EQ(b.swapped_index, want) << kinds.size();
        ASSERT_EQ(b.swapped_kinds.size(), want.size());
        ASSERT_GE(want.size(), 10u);
        ASSERT_LT(want.size(), 64u);
        std::map<std::string, int64_t> used;
        for (size_t k = 0; k < want.size(); ++k) {
            const auto& q = b.swapped_prompts[k];
            bool found = false;
            for (const auto& [kind, r] : candidates[want[k]])
                if (q == r && kind == b.swapped_kinds[k]) found = true, ++used[kind];
            EXPECT_TRUE(found) << b.prompts[want[k]] << " -> " << q << " (" << b.swapped_kinds[k] << ")";
            EXPECT_NE(q, b.prompts[want[k]]);
        }
        for (const auto& k : kinds) EXPECT_GT(used[k], 3) << k << " used " << used[k] << " times of " << want.size();
    }
    c.swap_contrast = 0;
    EXPECT_TRUE(make_train_batch(c, 3).swapped_index.empty());

    // Same data and init, with and without the term: the weights after 3 steps differ, the loss stays finite.
    auto with = tiny(3), without = tiny(3);
    with.swap_contrast = 1.0;
    without.swap_contrast = 0.0;
    EXPECT_GT(block0_q_difference(train_and_load(with, "train_sc_on"), train_and_load(without, "train_sc_off")), 0);
    auto bad = tiny(1);
    bad.swap_margin = -1;
    auto err = error_of([&] { TrainConfig::from_json(bad.to_json()); });
    EXPECT_NE(err.find("swap_margin must be >= 0"), std::string::npos) << err;
    bad = tiny(1);
    bad.swap_kinds = {"colour"};  // not a kind
    err = error_of([&] { TrainConfig::from_json(bad.to_json()); });
    EXPECT_NE(err.find("unknown 'colour'"), std::string::npos) << err;
}

// swap_sigma_min: the contrast gets its own noise level per swapped sample, in [swap_sigma_min, 1), drawn after the
// batch's noise and sigma (a run without it keeps its exact streams); training with it changes the weights; a
// value outside [0, 1) or without the contrast is a config error.
TEST(Train, SwapSigmaMinDrawsTheContrastAtHighNoise) {
    auto c = tiny(1);
    c.batch = 32;
    c.swap_contrast = 0.5;
    const auto plain = make_train_batch(c, 2);
    EXPECT_FALSE(plain.swap_sigma.defined());
    c.swap_sigma_min = 0.9;
    const auto b = make_train_batch(c, 2);
    ASSERT_TRUE(b.swap_sigma.defined());
    ASSERT_GT(b.swapped_index.size(), 10u);
    EXPECT_EQ(b.swap_sigma.size(0), static_cast<int64_t>(b.swapped_index.size()));
    EXPECT_GE(b.swap_sigma.min().item<double>(), 0.9);
    EXPECT_LT(b.swap_sigma.max().item<double>(), 1.0);
    EXPECT_GT((b.swap_sigma.max() - b.swap_sigma.min()).item<double>(), 0.02);  // drawn, not one constant
    EXPECT_TRUE(torch::equal(b.eps, plain.eps));
    EXPECT_TRUE(torch::equal(b.sigma, plain.sigma));
    EXPECT_EQ(b.swapped_index, plain.swapped_index);
    EXPECT_TRUE(torch::equal(b.swap_sigma, make_train_batch(c, 2).swap_sigma));  // deterministic per step

    auto high = tiny(3), same = tiny(3);
    high.swap_contrast = same.swap_contrast = 1.0;
    high.swap_sigma_min = 0.9;
    EXPECT_GT(block0_q_difference(train_and_load(high, "train_ssm_on"), train_and_load(same, "train_ssm_off")), 0);

    auto bad = tiny(1);
    bad.swap_contrast = 1.0;
    bad.swap_sigma_min = 1.0;
    auto err = error_of([&] { TrainConfig::from_json(bad.to_json()); });
    EXPECT_NE(err.find("swap_sigma_min must be in [0, 1)"), std::string::npos) << err;
    bad.swap_contrast = 0.0;
    bad.swap_sigma_min = 0.9;
    err = error_of([&] { TrainConfig::from_json(bad.to_json()); });
    EXPECT_NE(err.find("needs swap_contrast > 0"), std::string::npos) << err;
}

// Every shipped training config parses and passes the trainer's checks (seeds clear of SynthBench's, known swap
// kinds, ...): a plain config as it is, a curriculum stage by stage.
TEST(Train, ShippedConfigsAreValid) {
    int configs = 0;
    for (const auto& e : fs::directory_iterator(std::string(SURGEON_SOURCE_DIR) + "/configs")) {
        if (e.path().extension() != ".json") continue;
        const auto path = e.path().string();
        auto stages = train_config_stages(path);
        if (stages.empty()) stages.push_back("");  // a plain config
        for (const auto& stage : stages) {
            try {
                (void)load_train_config(path, stage);
                ++configs;
            } catch (const std::exception& ex) {
                ADD_FAILURE() << path << " " << stage << ": " << ex.what();
            }
        }
    }
    EXPECT_GE(configs, 11);
}

// The curriculum's last stage describes the bundled teacher; a stage is the base with every patch up to it applied
// (null removes a key), and the stage errors name the choices.
TEST(Train, TeacherCurriculumEndsAtTheBundledTeacher) {
    const std::string path = std::string(SURGEON_SOURCE_DIR) + "/configs/synth-teacher-curriculum.json";
    const auto stages = train_config_stages(path);
    ASSERT_FALSE(stages.empty());
    const auto last = load_train_config(path, stages.back());
    const auto teacher = load_synth_model(std::string(SURGEON_SOURCE_DIR) + "/models/synth-teacher");
    EXPECT_EQ(last.model.to_json(), teacher.dit->config().to_json());
    EXPECT_EQ(last.position_channels, teacher.settings.position_channels);
    EXPECT_EQ(last.world.frames, teacher.settings.size.frames);
    EXPECT_EQ(last.swap_contrast, 0.0);
    const auto s8 = load_train_config(path, "8"), s9 = load_train_config(path, "9");
    EXPECT_GT(s8.position_init_std, 0.0);
    EXPECT_EQ(s9.position_init_std, 0.0);  // removed again by stage 9's patch
    EXPECT_EQ(s9.model.in_dim, 6);         // kept from stage 4's
    EXPECT_NE(error_of([&] { load_train_config(path, "5"); }).find("no stage '5'"), std::string::npos);
    EXPECT_NE(error_of([&] { load_train_config(path); }).find("pick a stage with --stage"), std::string::npos);
    const std::string tiny_path = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
    EXPECT_NE(error_of([&] { load_train_config(tiny_path, "1"); }).find("not a curriculum"), std::string::npos);
}

// A misspelt key is an error naming it, at the top level and in "train".
TEST(Train, UnknownConfigKeysAreErrors) {
    auto j = nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json"));
    j["train"]["learning_rate"] = 1e-3;
    auto err = error_of([&] { TrainConfig::from_json(j); });
    EXPECT_NE(err.find("unknown key 'learning_rate'"), std::string::npos) << err;
    j["train"].erase("learning_rate");
    j["worlds"] = nlohmann::json::object();
    err = error_of([&] { TrainConfig::from_json(j); });
    EXPECT_NE(err.find("unknown key 'worlds'"), std::string::npos) << err;
}

// --set overrides "train" fields through the same table: values as JSON (or strings), checked like the file's.
TEST(Train, SetOverridesTrainFields) {
    const std::string path = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
    const auto c = load_train_config(path, "", {"lr=1e-4", "optimizer=torch", "swap_kinds=[\"direction\"]"});
    EXPECT_EQ(c.lr, 1e-4);
    EXPECT_EQ(c.optimizer, "torch");
    EXPECT_EQ(c.swap_kinds, std::vector<std::string>{"direction"});
    EXPECT_NE(error_of([&] { load_train_config(path, "", {"lr=2"}); }).find("lr must be in (0, 1)"), std::string::npos);
    EXPECT_NE(error_of([&] { load_train_config(path, "", {"learning_rate=1"}); }).find("unknown key 'learning_rate'"),
              std::string::npos);
    EXPECT_NE(error_of([&] { load_train_config(path, "", {"lr"}); }).find("KEY=VALUE"), std::string::npos);
}

// Curriculum: exclude_motions removes every sample with such a motion from the data (deterministically), keeps the
// rest of the world's variety, and a misspelt motion is a config error naming the choices.
TEST(Train, ExcludeMotionsFiltersTheDataStream) {
    auto c = tiny(1);
    c.batch = 64;
    c.cfg_dropout = 0.0;
    c.exclude_motions = {"left", "up"};
    int right = 0, down = 0, bouncing = 0;
    for (int64_t step = 0; step < 3; ++step) {
        auto b = make_train_batch(c, step);
        auto again = make_train_batch(c, step);
        EXPECT_EQ(b.prompts, again.prompts);
        EXPECT_TRUE(torch::equal(b.videos, again.videos));
        for (const auto& p : b.prompts) {
            EXPECT_EQ(p.find("moving left"), std::string::npos) << p;
            EXPECT_EQ(p.find("moving up"), std::string::npos) << p;
            right += p.find("moving right") != std::string::npos;
            down += p.find("moving down") != std::string::npos;
            bouncing += p.find("bouncing") != std::string::npos;
        }
    }
    EXPECT_GT(right, 10);
    EXPECT_GT(down, 10);
    EXPECT_GT(bouncing, 10);
    // Without the filter the same stream has the excluded directions (the filter is what removes them).
    c.exclude_motions.clear();
    int left = 0;
    for (const auto& p : make_train_batch(c, 0).prompts) left += p.find("moving left") != std::string::npos;
    EXPECT_GT(left, 0);
    auto j = nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json"));
    j["train"]["exclude_motions"] = {"sideways"};
    auto err = error_of([&] { TrainConfig::from_json(j); });
    EXPECT_NE(err.find("exclude_motions"), std::string::npos) << err;
    EXPECT_NE(err.find("sideways"), std::string::npos) << err;
    j["train"]["exclude_motions"] = {"left"};
    EXPECT_EQ(TrainConfig::from_json(j).to_json()["train"]["exclude_motions"], nlohmann::json({"left"}));
}
