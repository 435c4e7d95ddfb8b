// `surgeon train` on a tiny config: the loss falls, the exported model loads and generates, and a run that is
// stopped and resumed ends with the same weights as an uninterrupted one.
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "pipelines/trainer.h"
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
std::vector<double> losses(const std::string& dir) {
    std::ifstream in(dir + "/loss.csv");
    std::string line;
    std::getline(in, line);
    std::vector<double> l;
    while (std::getline(in, line)) l.push_back(std::stod(line.substr(line.find(',') + 1)));
    return l;
}
}  // namespace

TEST(Train, LossFallsAndModelGenerates) {
    auto dir = temp_dir("train");
    auto r = train_synth_model(tiny(60), dir, false, false);
    EXPECT_EQ(r.steps_done, 60);
    auto l = losses(dir);
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
}

TEST(Train, ResumeAfterStopMatchesUninterruptedRun) {
    auto a = temp_dir("train_full"), b = temp_dir("train_resume");
    train_synth_model(tiny(40), a, false, false);
    train_synth_model(tiny(40), b, false, false, /*stop_after=*/20);  // "killed" after the checkpoint at step 20
    train_synth_model(tiny(40), b, true, false);   // resumed
    auto sa = load_safetensors(a + "/checkpoint/state.safetensors");
    auto sb = load_safetensors(b + "/checkpoint/state.safetensors");
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto& [n, t] : sa)
        if (n != "history") EXPECT_LE(rel_error(sb.at(n), t), 1e-5) << n;
    EXPECT_EQ(losses(a).size(), losses(b).size());
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
}
