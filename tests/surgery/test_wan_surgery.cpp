// `surgeon surgery` on a tiny random Wan2.1 folder, end to end on the CPU: prompts -> umT5 -> stage 1 on the
// teacher's own trajectories -> knapsack -> stage 3 on the teacher's samples (or on videos encoded through the
// Wan-VAE) -> a student folder that `surgeon generate` turns into an MP4. The folder is made here: a random DiT
// (official layout, text_dim 24), the tiny umT5 of tests/data/umt5-tiny, a random tiny Wan-VAE (z_dim 4); and the
// diffusers layout from the shared golden tiny transformer and VAE.
// Run: ctest --test-dir build -R WanSurgery
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/safetensors.h"
#include "core/video_io.h"
#include "model/model_io.h"
#include "testing/testing.h"
#include "vae/wan_vae.h"

namespace surgeon::testing {
namespace {
namespace fs = std::filesystem;

const std::string kUmt5 = std::string(SURGEON_SOURCE_DIR) + "/tests/data/umt5-tiny";

// A random tiny Wan2.1 folder: DiT at the root (config.json + safetensors), text_encoder/ + tokenizer/, vae/.
std::string tiny_wan_folder(const std::string& dir) {
    torch::manual_seed(11);
    WanConfig cfg;
    cfg.dim = 32;
    cfg.ffn_dim = 64;
    cfg.freq_dim = 32;
    cfg.num_heads = 2;
    cfg.num_layers = 2;
    cfg.in_dim = cfg.out_dim = 4;
    cfg.text_dim = 24;  // the tiny umT5's d_model
    cfg.text_len = 512;  // as Wan (the text encoder pads to 512)
    WanModel dit(cfg);
    save_wan_model(dit, dir, torch::kFloat32);
    fs::copy(kUmt5 + "/text_encoder", dir + "/text_encoder", fs::copy_options::recursive);
    fs::copy(kUmt5 + "/tokenizer", dir + "/tokenizer", fs::copy_options::recursive);
    vae::WanVAEConfig vc;
    vc.dim = 8;
    vc.z_dim = 4;
    vc.dim_mult = {1, 2, 2, 2};
    vc.num_res_blocks = 1;
    vae::WanVAE v(vc);
    fs::create_directories(dir + "/vae");
    save_safetensors(dir + "/vae/Wan2.1_VAE.safetensors", state_dict(*v));
    std::ofstream(dir + "/vae/config.json")
        << R"({"dim": 8, "z_dim": 4, "dim_mult": [1, 2, 2, 2], "num_res_blocks": 1, "attn_scales": [],
              "temperal_downsample": [false, true, true], "latents_mean": [0.0, 0.1, 0.2, 0.3],
              "latents_std": [1.0, 1.1, 1.2, 1.3]})";
    std::ofstream(dir + "/prompts.txt") << "A red cat walks slowly across a sunny garden.\n"
                                           "two blue birds fly over the quiet river at dusk\n\n"
                                           "a small boat drifts on a calm lake\n";
    std::ofstream(dir + "/options.json")
        << R"({"options": [{"name": "softmax", "kind": "softmax"},
                           {"name": "R2", "kind": "hybrid", "rate": 2, "feature_map": {"kind": "elu1"}},
                           {"name": "lin", "kind": "linear", "feature_map": {"kind": "elu1"}}]})";
    return dir;
}

// The same teacher files in the diffusers layout: the golden tiny transformer/ (diffusers names, text_dim 24) and
// vae/ (AutoencoderKLWan, z_dim 4) with the tiny umT5's text_encoder/ and tokenizer/ (the goldens are shared
// fixtures: ../shared/golden).
std::string diffusers_wan_folder(const std::string& dir) {
    fs::create_directories(dir);
    fs::copy(golden("wan-t2v-tiny-diffusers/transformer"), dir + "/transformer", fs::copy_options::recursive);
    fs::copy(golden("wan-vae-tiny-diffusers/vae"), dir + "/vae", fs::copy_options::recursive);
    fs::copy(kUmt5 + "/text_encoder", dir + "/text_encoder", fs::copy_options::recursive);
    fs::copy(kUmt5 + "/tokenizer", dir + "/tokenizer", fs::copy_options::recursive);
    fs::copy_file(dir + "/../teacher/prompts.txt", dir + "/prompts.txt");
    fs::copy_file(dir + "/../teacher/options.json", dir + "/options.json");
    return dir;
}

const std::string kSize = " --frames 9 --height 64 --width 64";

std::string surgery_args(const std::string& teacher, const std::string& out) {
    return "surgery --teacher " + teacher + " --prompts " + teacher + "/prompts.txt --options " + teacher +
           "/options.json" + kSize + " --budget 0.6 --preset quick --distill-updates 3 --finetune-steps 3 "
           "--eval-samples 1 --out " + out;
}

TEST(WanSurgery, PromptsToStudentFolderToMp4) {
    const auto dir = temp_dir("wan_surgery");
    const auto teacher = tiny_wan_folder(dir + "/teacher");
    auto r = run_surgeon(surgery_args(teacher, dir + "/student"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("PSNR"), std::string::npos) << r.out;
    for (const char* f : {"report.json", "report.md", "sheet.png", "curve.png", "errors.png", "plan.json", "config.json",
                          "text_encoder/config.json", "tokenizer/spiece.model", "vae/config.json"})
        EXPECT_TRUE(fs::exists(dir + "/student/" + f)) << f;
    const auto rep = nlohmann::json::parse(read_text_file(dir + "/student/report.json"));
    EXPECT_LE(rep["attention_flops_fraction"].get<double>(), 0.6);
    EXPECT_GT(rep["attention_flops_fraction"].get<double>(), 0.0);
    EXPECT_TRUE(rep["student"].contains("psnr") && rep["student"].contains("ssim"));
    EXPECT_FALSE(rep["student"].contains("score"));  // SynthBench: synth teachers only
    EXPECT_FALSE(fs::exists(dir + "/student/prompts.txt"));  // of the teacher folder, only encoder and VAE come along
    EXPECT_NE(read_text_file(dir + "/student/report.md").find("SynthBench exists only"), std::string::npos);
    // Stage 1 recorded the teacher's trajectories: two training prompts' samples kept for stage 3.
    EXPECT_TRUE(fs::exists(dir + "/student/work/wan/teacher-samples/0-4.safetensors"));
    EXPECT_TRUE(fs::exists(dir + "/student/work/wan/teacher-samples/1-4.safetensors"));
    // The student folder runs in `surgeon generate` (umT5 + DiT under its plan + VAE).
    r = run_surgeon("generate --model " + dir + "/student --prompt 'a red cat'" + kSize + " --steps 2 --out " + dir +
                    "/v.mp4");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(fs::file_size(dir + "/v.mp4"), 0u);
    r = run_surgeon("inspect " + dir + "/student --no-tensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("converted"), std::string::npos) << r.out;
}

TEST(WanSurgery, DiffusersFolderVideosAreEncodedThroughTheVae) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny-diffusers"));
    const auto dir = temp_dir("wan_surgery_videos");
    tiny_wan_folder(dir + "/teacher");
    const auto teacher = diffusers_wan_folder(dir + "/diffusers");
    fs::create_directories(dir + "/videos");
    for (int i = 0; i < 2; ++i)  // two training prompts, two clips (a moving gradient), larger than the video size
        write_video(dir + "/videos/clip" + std::to_string(i) + ".mp4",
                    torch::linspace(-1, 1, 80).view({1, 1, 1, 80}).expand({3, 11, 72, 80}).roll(i * 7 + 3, 3).clone());
    auto r = run_surgeon(surgery_args(teacher, dir + "/student") + " --videos " + dir + "/videos");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/student/work/wan/video-latents.safetensors"));
    EXPECT_TRUE(fs::exists(dir + "/student/config.json") && !fs::exists(dir + "/student/transformer"));
    r = run_surgeon("generate --model " + dir + "/student --prompt 'a boat'" + kSize + " --steps 2 --out " + dir +
                    "/v.mp4");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // A wrong number of videos: one error line, nothing written.
    fs::remove(dir + "/videos/clip1.mp4");
    r = run_surgeon(surgery_args(teacher, dir + "/bad") + " --videos " + dir + "/videos");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("1 videos for 2 training prompts"), std::string::npos) << r.err;
}

TEST(WanSurgery, WanTeacherNeedsPrompts) {
    const auto dir = temp_dir("wan_surgery_bad");
    const auto teacher = tiny_wan_folder(dir + "/teacher");
    auto r = run_surgeon("surgery --teacher " + teacher + " --budget 0.5 --out " + dir + "/s");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("--prompts FILE is required"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir + "/s"));
}

}  // namespace
}  // namespace surgeon::testing
