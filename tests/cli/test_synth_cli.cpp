// The synthetic-world commands end to end on tiny sizes: world, train (tiny config, CPU), generate, eval,
// and their one-line errors.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/fs.h"
#include "core/safetensors.h"
#include "core/video_io.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;
namespace fs = std::filesystem;

namespace {
// (width, height) from a PNG's IHDR chunk.
std::pair<int64_t, int64_t> png_size(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    unsigned char h[24] = {};
    f.read(reinterpret_cast<char*>(h), 24);
    EXPECT_TRUE(f.good() && h[1] == 'P' && h[2] == 'N' && h[3] == 'G') << path;
    auto be32 = [&](int o) { return (int64_t{h[o]} << 24) | (int64_t{h[o + 1]} << 16) | (int64_t{h[o + 2]} << 8) | h[o + 3]; };
    return {be32(16), be32(20)};
}
}  // namespace

TEST(SynthCli, WorldWritesSampleFiles) {
    auto dir = temp_dir("cli_world");
    auto r = run_surgeon("world --seed 7 --out " + dir + "/w");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (auto f : {"sample.mp4", "sample.gif", "sheet.png", "prompt.txt", "spec.json"})
        EXPECT_TRUE(fs::exists(dir + "/w/" + f)) << f;
    EXPECT_NE(read_text_file(dir + "/w/prompt.txt").find(" on a "), std::string::npos);
}

TEST(SynthCli, TrainGenerateEvalOnTinyConfig) {
    auto dir = temp_dir("cli_train");
    const std::string cfg = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
    auto r = run_surgeon("train --config " + cfg + " --out " + dir + "/run --steps 20");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/run/model/surgeon.json"));
    EXPECT_TRUE(fs::exists(dir + "/run/loss.csv"));
    r = run_surgeon("generate --model " + dir + "/run/model --prompt 'a small red circle staying still on a gray background' --seed 1 --out " +
                    dir + "/v.png --steps 3 --trace " + dir + "/trace.png");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/v.png"));
    // --trace: one row per step (3), each the 4 frames of the tiny world's 16 x 16 video.
    const auto trace = png_size(dir + "/trace.png");
    const auto want = contact_sheet_rows(std::vector<torch::Tensor>(3, torch::zeros({3, 4, 16, 16})));
    EXPECT_EQ(trace.first, want.size(2));
    EXPECT_EQ(trace.second, want.size(1));
    const std::string said = "row i = the x0 prediction at step i, sigma ";
    const auto at = r.out.find(said);
    ASSERT_NE(at, std::string::npos) << r.out;
    std::istringstream sigmas(r.out.substr(at + said.size(), r.out.find('\n', at) - at - said.size()));
    std::vector<double> sig{std::istream_iterator<double>(sigmas), std::istream_iterator<double>()};
    ASSERT_EQ(sig.size(), 3u) << r.out;
    EXPECT_TRUE(sig[0] > sig[1] && sig[1] > sig[2] && sig[2] > 0) << r.out;
    r = run_surgeon("generate --model " + dir + "/run/model --prompt 'a small red circle staying still on a gray background' --out " +
                    dir + "/v2.png --steps 2 --trace " + dir + "/trace.gif");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("--trace writes a PNG"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/v2.png"));
    // --eta: ancestral Euler steps; the model's default solver (UniPC) is refused with a one-line error.
    r = run_surgeon("generate --model " + dir + "/run/model --prompt 'a small red circle staying still on a gray background' --out " +
                    dir + "/v3.png --steps 2 --eta 1");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("needs --solver euler"), std::string::npos) << r.err;
    r = run_surgeon("generate --model " + dir + "/run/model --prompt 'a small red circle staying still on a gray background' --out " +
                    dir + "/v3.png --steps 2 --solver euler --eta 1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/v3.png"));
    r = run_surgeon("eval --model " + dir + "/run/model --reference-model " + dir +
                    "/run/model --num-samples 2 --steps 2 --seed 0 --denoise-sigmas 0.1 0.9 --json " + dir + "/e.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(read_text_file(dir + "/e.json"));
    for (auto k : {"score", "metrics", "ground_truth_score", "psnr", "ssim"}) EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_GE(j["ground_truth_score"].get<double>(), 0.9);
    EXPECT_NEAR(j["ssim"].get<double>(), 1.0, 1e-9);  // same model, same noise: identical videos
    ASSERT_EQ(j["samples"].size(), 2u);
    EXPECT_EQ(j["samples"][1]["seed"].get<uint64_t>(), 1u);
    EXPECT_FALSE(j["samples"][1]["prompt"].get<std::string>().empty());
    // Per sample, what was detected: one entry per prompted object (shape, colour, motion, ...).
    const std::string p1 = j["samples"][1]["prompt"].get<std::string>();
    EXPECT_EQ(j["samples"][1]["details"]["objects"].size(), p1.find(" and a ") == std::string::npos ? 1u : 2u) << p1;
    double mean = 0;
    for (const auto& e : j["samples"]) mean += e["score"].get<double>() / 2;
    EXPECT_NEAR(mean, j["score"].get<double>(), 1e-9);
    EXPECT_EQ(j["sampling"]["steps"].get<int>(), 2);
    EXPECT_EQ(j["sampling"]["eta"].get<double>(), 0.0);
    ASSERT_TRUE(j.contains("denoise_mse"));
    EXPECT_EQ(j["denoise_mse"].size(), 2u);
    EXPECT_GT(j["denoise_mse"]["0.9"].get<double>(), 0.0);
    // The report says how it sampled, ancestral steps included.
    r = run_surgeon("eval --model " + dir + "/run/model --num-samples 1 --steps 2 --solver euler --eta 0.5 --json " + dir + "/e2.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j2 = nlohmann::json::parse(read_text_file(dir + "/e2.json"));
    EXPECT_EQ(j2["sampling"]["solver"].get<std::string>(), "euler");
    EXPECT_EQ(j2["sampling"]["eta"].get<double>(), 0.5);
    // Bad input: unknown word, wrong extension, missing folder.
    r = run_surgeon("generate --model " + dir + "/run/model --prompt 'a purple elephant' --out " + dir + "/x.png");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("elephant"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/x.png"));
    r = run_surgeon("generate --model " + dir + "/run/model --prompt 'a' --out " + dir + "/x.avi");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(".mp4, .gif or .png"), std::string::npos) << r.err;
    r = run_surgeon("train --config " + cfg + " --out " + dir + "/run2 --device cuda:3");
    if (!torch::cuda::is_available()) {
        EXPECT_NE(r.exit_code, 0);
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
}

// --time-limit: the run stops early with a checkpoint and a usable model; --resume finishes it.
TEST(SynthCli, TrainTimeLimitStopsThenResumeFinishes) {
    auto dir = temp_dir("cli_train_time");
    const std::string cfg = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
    auto r = run_surgeon("train --config " + cfg + " --out " + dir + "/run --steps 30 --time-limit 0.001");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("stopped at step 1 of 30"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(dir + "/run/checkpoint/progress.json"));
    EXPECT_TRUE(fs::exists(dir + "/run/model/surgeon.json"));
    EXPECT_FALSE(fs::exists(dir + "/run/model.tmp"));
    r = run_surgeon("train --config " + cfg + " --out " + dir + "/run --steps 30 --resume");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("trained 30 steps"), std::string::npos) << r.out;
    auto p = nlohmann::json::parse(read_text_file(dir + "/run/checkpoint/progress.json"));
    EXPECT_EQ(p["step"].get<int64_t>(), 30);
    r = run_surgeon("train --config " + cfg + " --out " + dir + "/run --time-limit -5");
    EXPECT_NE(r.exit_code, 0);
}

TEST(SynthCli, GenerateRealWanWithVaeAndContextFile) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-vae-tiny-diffusers"));
    auto dir = temp_dir("cli_gen_wan");
    // The tiny golden DiT (4 latent channels, text_dim 24) with the tiny diffusers VAE (z_dim 4, mean/std in config).
    save_safetensors(dir + "/ctx.safetensors", {{"context", torch::randn({1, 10, 24})}});
    auto r = run_surgeon("generate --model " + golden("wan-t2v-tiny") + " --vae " + golden("wan-vae-tiny-diffusers") +
                         " --context " + dir + "/ctx.safetensors --frames 5 --height 32 --width 48 --steps 2 --out " +
                         dir + "/v.png");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/v.png"));
    r = run_surgeon("generate --model " + golden("wan-t2v-tiny") + " --out " + dir + "/w.png");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("--vae DIR and --context FILE"), std::string::npos) << r.err;
}

TEST(SynthCli, DistillWritesATableThatResumesExactlyAndFeedsTheKnapsack) {
    // Stage 1 then stage 2 on a tiny trained teacher: `distill` writes block_errors.json (softmax 0, the others
    // their held-out error) and phi per option and block; a run cut by --time-limit and resumed gives the same
    // table as an uninterrupted one; `plan knapsack` selects from the table.
    auto dir = temp_dir("cli_distill");
    const std::string cfg = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
    auto r = run_surgeon("train --config " + cfg + " --out " + dir + "/t --steps 10");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    {
        std::ofstream o(dir + "/options.json");
        o << R"({"options": [{"name": "softmax", "kind": "softmax"}, {"name": "R2", "kind": "hybrid", "rate": 2},
                             {"name": "elu", "kind": "linear", "feature_map": {"kind": "elu1"}}]})";
    }
    const std::string base = "distill --teacher " + dir + "/t/model --options " + dir + "/options.json --prompts 2 " +
                             "--heldout-prompts 1 --batch 1 --updates 3 --sample-steps 3 --out ";
    r = run_surgeon(base + dir + "/full");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("distilled 2 rounds"), std::string::npos) << r.out;
    const auto full = nlohmann::json::parse(read_text_file(dir + "/full/block_errors.json"));
    ASSERT_EQ(full["errors"].size(), 2u);
    for (const auto& row : full["errors"]) {
        EXPECT_EQ(row[0].get<double>(), 0.0);
        EXPECT_GT(row[1].get<double>(), 0.0);
        EXPECT_GT(row[2].get<double>(), 0.0);
    }
    EXPECT_TRUE(fs::exists(dir + "/full/phi/R2/block1.safetensors"));
    EXPECT_TRUE(fs::exists(dir + "/full/errors.png"));
    EXPECT_TRUE(fs::exists(dir + "/full/block_errors_init.json"));
    EXPECT_FALSE(fs::exists(dir + "/full/phi/elu"));  // elu1 has no parameters

    // Cut after the first round, then resumed: the same table, bit for bit.
    r = run_surgeon(base + dir + "/cut --time-limit 0.001");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("stopped after 1 of 2 rounds"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir + "/cut/block_errors.json"));
    r = run_surgeon(base + dir + "/cut");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("holds a distillation run; --resume continues it"), std::string::npos) << r.err;
    r = run_surgeon("distill --teacher " + dir + "/t/model --options " + dir + "/options.json --prompts 2 " +
                    "--heldout-prompts 1 --batch 1 --updates 4 --sample-steps 3 --resume --out " + dir + "/cut");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("--resume: setting 'updates' differs from the run in"), std::string::npos) << r.err;
    r = run_surgeon(base + dir + "/cut --resume");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(read_text_file(dir + "/cut/block_errors.json")), full);

    r = run_surgeon("plan knapsack --model " + dir + "/t/model --errors " + dir + "/full/block_errors.json --budget 0.9 " +
                    "--grid 4x4x4 --out " + dir + "/plan.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/plan.json"));

    // The student runs: the teacher under a plan with the distilled phi (generate and eval).
    r = run_surgeon("plan uniform --model " + dir + "/t/model --kind hybrid --rate 2 --out " + dir + "/r2.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string student = " --model " + dir + "/t/model --plan " + dir + "/r2.json --phi " + dir + "/full";
    r = run_surgeon("generate" + student + " --prompt \"a small red circle staying still on a gray background\" --out " +
                    dir + "/s.png");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/s.png"));
    r = run_surgeon("eval" + student + " --num-samples 1 --reference-model " + dir + "/t/model --json " + dir + "/se.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto se = nlohmann::json::parse(read_text_file(dir + "/se.json"));
    EXPECT_EQ(se["phi"], dir + "/full");
    EXPECT_LT(se["psnr"].get<double>(), 200.0);  // the hybrid student differs from its teacher
    // Without the distilled phi the same plan runs seeded phi: another video.
    r = run_surgeon("generate --model " + dir + "/t/model --plan " + dir + "/r2.json --prompt \"a small red circle staying " +
                    "still on a gray background\" --out " + dir + "/s_seeded.png");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(read_text_file(dir + "/s.png"), read_text_file(dir + "/s_seeded.png"));
    // One-line errors: phi without a plan, and a plan whose option the run did not distil.
    r = run_surgeon("generate --model " + dir + "/t/model --phi " + dir + "/full --prompt x --out " + dir + "/e.png");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("runs no attention plan to load them into"), std::string::npos) << r.err;
    r = run_surgeon("plan uniform --model " + dir + "/t/model --kind hybrid --rate 4 --out " + dir + "/r4.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_surgeon("generate --model " + dir + "/t/model --plan " + dir + "/r4.json --phi " + dir + "/full --prompt x --out " +
                    dir + "/e.png");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("block 0 runs hybrid R=4"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/e.png"));
    r = run_surgeon("distill --teacher " + dir + "/t/model --options " + dir + "/nope.json --out " + dir + "/x");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}
