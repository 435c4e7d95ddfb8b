// Prompt -> video on tiny random Wan2.1 folders: the golden tiny DiT (text_dim 24) and tiny VAE with the tiny
// umT5 of tests/data/umt5-tiny (d_model 24), in the diffusers layout (transformer/, text_encoder/, tokenizer/,
// vae/) and the official one (DiT at the root, models_t5_umt5-xxl-enc-bf16.pth, google/umt5-xxl/spiece.model;
// the tiny VAE given with --vae since an official folder's Wan2.1_VAE.pth has the published config); and
// `surgeon text-encode` / `surgeon generate` end to end.
// Run: ctest --test-dir build -R 'WanT2V|TextEncodeCli'
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "pipelines/wan_t2v.h"
#include "testing/testing.h"
#include "text/text_encode.h"

namespace surgeon::testing {
namespace {
namespace fs = std::filesystem;

const std::string kData = std::string(SURGEON_SOURCE_DIR) + "/tests/data/umt5-tiny";

void copy_dir(const std::string& from, const std::string& to) {
    fs::create_directories(to);
    fs::copy(from, to, fs::copy_options::recursive);
}

std::string diffusers_wan(const std::string& tag) {
    const auto dir = temp_dir(tag);
    copy_dir(golden("wan-t2v-tiny-diffusers/transformer"), dir + "/transformer");
    copy_dir(golden("wan-vae-tiny-diffusers/vae"), dir + "/vae");
    copy_dir(kData + "/text_encoder", dir + "/text_encoder");
    copy_dir(kData + "/tokenizer", dir + "/tokenizer");
    return dir;
}

std::string official_wan(const std::string& tag) {
    const auto dir = temp_dir(tag);
    copy_dir(golden("wan-t2v-tiny"), dir);
    fs::copy_file(kData + "/models_t5_umt5-xxl-enc-bf16.pth", dir + "/models_t5_umt5-xxl-enc-bf16.pth");
    fs::create_directories(dir + "/google/umt5-xxl");
    fs::copy_file(kData + "/tokenizer/spiece.model", dir + "/google/umt5-xxl/spiece.model");
    return dir;
}

WanT2VRequest tiny_request(const std::string& prompt) {
    WanT2VRequest r;
    r.prompt = prompt;
    r.frames = 5;
    r.height = 32;
    r.width = 32;
    r.seed = 3;
    r.sampling.steps = 3;
    r.progress = false;
    return r;
}

TEST(WanT2V, DiffusersFolderPromptToVideo) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny-diffusers"));
    torch::set_num_threads(1);
    const auto dir = diffusers_wan("wan-diffusers");
    EXPECT_TRUE(is_wan_t2v_folder(dir));
    auto a = generate_wan_t2v(dir, tiny_request("A red cat walks slowly across a sunny garden."));
    ASSERT_EQ(a.sizes(), (std::vector<int64_t>{3, 5, 32, 32}));
    EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
    EXPECT_LE(a.abs().max().item<float>(), 1.0f);
    auto again = generate_wan_t2v(dir, tiny_request("A red cat walks slowly across a sunny garden."));
    EXPECT_TRUE(torch::equal(a, again));  // seeded
    auto other = generate_wan_t2v(dir, tiny_request("two blue birds fly over the quiet river at dusk"));
    EXPECT_GT((other - a).abs().max().item<float>(), 1e-4);  // the prompt reaches the video
}

TEST(WanT2V, OfficialFolderPromptToVideo) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny"));
    torch::set_num_threads(1);
    const auto dir = official_wan("wan-official");
    EXPECT_TRUE(is_wan_t2v_folder(dir));
    auto te = text::load_text_encoder(dir);
    EXPECT_EQ(te.folder.text_len, 10);  // the DiT's config.json
    auto r = tiny_request("A red cat walks slowly across a sunny garden.");
    EXPECT_NE(error_of([&] { generate_wan_t2v(dir, r); }).find("no VAE"), std::string::npos);
    r.vae = golden("wan-vae-tiny-diffusers/vae");
    auto v = generate_wan_t2v(dir, r);
    ASSERT_EQ(v.sizes(), (std::vector<int64_t>{3, 5, 32, 32}));
    EXPECT_TRUE(torch::isfinite(v).all().item<bool>());
}

TEST(TextEncodeCli, MatchesGoldenAndWritesNothingOnError) {
    const auto out = temp_dir("text-cli") + "/ctx.safetensors";
    const auto prompts = nlohmann::json::parse(std::ifstream(kData + "/prompts.json")).get<std::vector<std::string>>();
    std::string args = "text-encode --model '" + kData + "' --text-len 32 --out '" + out + "'";
    for (size_t i = 0; i + 1 < prompts.size(); ++i) args += " --prompt '" + prompts[i] + "'";
    args += " --negative";  // Wan's default negative prompt = the golden's last prompt
    auto r = run_surgeon(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = load_safetensors(out);
    const auto want = load_safetensors(kData + "/expected.safetensors");
    EXPECT_TRUE(torch::equal(got.at("out.ids"), want.at("ids_32")));
    EXPECT_LE(rel_error(got.at("out.context"), want.at("context")), 1e-4);

    const auto bad = temp_dir("text-cli-bad") + "/x.safetensors";
    r = run_surgeon("text-encode --model /nonexistent --prompt hi --out '" + bad + "'");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(bad));
}

TEST(TextEncodeCli, GenerateWritesMp4) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny-diffusers"));
    const auto dir = diffusers_wan("wan-cli");
    const auto out = temp_dir("wan-cli-out") + "/v.mp4";
    auto r = run_surgeon("generate --model '" + dir + "' --prompt 'a red cat' --frames 5 --height 32 --width 32 "
                         "--steps 2 --seed 1 --out '" + out + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(fs::file_size(out), 0u);
    EXPECT_NE(r.err.find("[wan] umT5"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace surgeon::testing
