// `surgeon student` and `surgeon surgery` on a tiny trained teacher: a student folder that every command loads, the
// whole surgery (stages 1 -> 2 -> 3 + report) end to end, and SIGKILL at several points followed by the same
// command gives the same student (bit for bit) and the same report as an uninterrupted run.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "core/safetensors.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
namespace fs = std::filesystem;
using testing::run_surgeon;
using testing::temp_dir;

// A tiny teacher trained for a few steps (configs/tiny-train.json: 2 blocks, 4x4x4 = 64 tokens) and an options file
// whose converted kinds are cheaper than softmax at 64 tokens (elu1 feature maps: no MLP).
std::string tiny_teacher(const std::string& dir) {
    const std::string cfg = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
    auto r = run_surgeon("train --config " + cfg + " --out " + dir + "/t --steps 10");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::ofstream o(dir + "/options.json");
    o << R"({"options": [{"name": "softmax", "kind": "softmax"},
                         {"name": "R2", "kind": "hybrid", "rate": 2, "feature_map": {"kind": "elu1"}},
                         {"name": "lin", "kind": "linear", "feature_map": {"kind": "elu1"}}]})";
    return dir + "/t/model";
}

nlohmann::json report_without_times(const std::string& dir) {
    auto j = nlohmann::json::parse(read_text_file(dir + "/report.json"));
    j.erase("seconds");
    return j;
}

TEST(SurgeryCli, StudentFolderRunsEverywhereAndKeepsItsPlan) {
    const auto dir = temp_dir("cli_student");
    const auto teacher = tiny_teacher(dir);
    auto r = run_surgeon("plan uniform --model " + teacher + " --kind hybrid --rate 2 --out " + dir + "/r2.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_surgeon("student --teacher " + teacher + " --plan " + dir + "/r2.json --seed 4 --out " + dir + "/s");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("2 of 2 blocks converted"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(dir + "/s/plan.json"));
    r = run_surgeon("generate --model " + dir + "/s --prompt \"a small red circle staying still on a gray background\" --out " +
                    dir + "/s.png");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_surgeon("inspect " + dir + "/s --no-tensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("hybrid R=2"), std::string::npos) << r.out;
    // The student's phi belong to R=2: running it as R=4 is refused, not silently reused.
    r = run_surgeon("plan uniform --model " + teacher + " --kind hybrid --rate 4 --out " + dir + "/r4.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_surgeon("generate --model " + dir + "/s --plan " + dir + "/r4.json --prompt x --out " + dir + "/e.png");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("holds feature maps trained for 'hybrid R=2"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/e.png"));
    // Outputs never land in the teacher's folder.
    r = run_surgeon("student --teacher " + teacher + " --plan " + dir + "/r2.json --out " + teacher + "/s");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_FALSE(fs::exists(teacher + "/s"));
}

TEST(SurgeryCli, EndToEndAndSigkillThenRerunGivesTheSameStudent) {
    const auto dir = temp_dir("cli_surgery");
    const auto teacher = tiny_teacher(dir);
    const std::string args = "surgery --teacher " + teacher + " --options " + dir + "/options.json --budget 0.6 " +
                             "--preset quick --distill-updates 3 --finetune-steps 4 --eval-samples 2 --out ";
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_surgeon(args + dir + "/full");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("SynthBench over 2 prompts"), std::string::npos) << r.out;
    for (const char* f : {"report.json", "report.md", "sheet.png", "curve.png", "errors.png", "plan.json", "config.json",
                          "diffusion_pytorch_model.safetensors", "text_encoder.safetensors", "surgeon.json"})
        EXPECT_TRUE(fs::exists(dir + "/full/" + f)) << f;
    const auto full = report_without_times(dir + "/full");
    EXPECT_LE(full["attention_flops_fraction"].get<double>(), 0.6);
    EXPECT_GT(full["attention_flops_fraction"].get<double>(), 0.0);
    for (const char* k : {"score", "psnr", "ssim"}) EXPECT_TRUE(full["student"].contains(k)) << k;
    const auto weights = read_text_file(dir + "/full/diffusion_pytorch_model.safetensors");
    // The student is a model folder: generate runs it.
    r = run_surgeon("generate --model " + dir + "/full --prompt \"a large blue square moving left slowly on a black "
                    "background\" --out " + dir + "/full.png");
    ASSERT_EQ(r.exit_code, 0) << r.err;

    // SIGKILL at 15%, 35%, 55%, 75% and 95% of the uninterrupted run's time (stage 1, the student, stage 3, the
    // report, the final writes), then the same command again.
    int n = 0;
    for (double frac : {0.15, 0.35, 0.55, 0.75, 0.95}) {
        const std::string d = std::to_string(frac * seconds);
        const std::string out = dir + "/k" + std::to_string(n++);
        const std::string cmd = "timeout -s KILL " + d + " " + SURGEON_BINARY + " " + args + out + " >/dev/null 2>&1";
        (void)std::system(cmd.c_str());
        r = run_surgeon(args + out);
        ASSERT_EQ(r.exit_code, 0) << "killed after " << d << " s: " << r.err;
        EXPECT_EQ(report_without_times(out), full) << "killed after " << d << " s";
        EXPECT_EQ(read_text_file(out + "/diffusion_pytorch_model.safetensors"), weights) << "killed after " << d << " s";
    }
}

}  // namespace
}  // namespace surgeon
