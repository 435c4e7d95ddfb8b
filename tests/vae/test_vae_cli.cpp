// `surgeon encode` / `surgeon decode` end to end on the golden tiny VAEs: tensor files in and out match the
// goldens, video outputs are written, and bad inputs give one error line, a non-zero exit and no file.
// Run: ctest --test-dir build-vae -R 'VAECli'
#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "core/safetensors.h"
#include "testing/testing.h"

namespace surgeon::testing {
namespace {
namespace fs = std::filesystem;

int count_lines(const std::string& s) {
    int n = 0;
    for (char ch : s) n += ch == '\n';
    return n;
}

// A copy of the official tiny VAE whose config.json also carries the fixture's latent mean/std.
std::string official_vae_with_stats(const std::string& dir, const TensorMap& g) {
    const auto vae = dir + "/vae";
    fs::create_directories(vae);
    fs::copy_file(golden("wan-vae-tiny/Wan2.1_VAE.pth"), vae + "/Wan2.1_VAE.pth");
    auto cfg = nlohmann::json::parse(std::ifstream(golden("wan-vae-tiny/config.json")));
    auto to_list = [](const torch::Tensor& t) {
        std::vector<double> v;
        for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t[i].item<double>());
        return v;
    };
    cfg["latents_mean"] = to_list(g.at("in.latents_mean"));
    cfg["latents_std"] = to_list(g.at("in.latents_std"));
    std::ofstream(vae + "/config.json") << cfg.dump();
    return vae;
}

TEST(VAECli, DecodeNormalizedMatchesGolden) {
    const auto fx = golden("vae_official.safetensors");
    SURGEON_REQUIRE_GOLDEN(fx);
    const auto g = load_safetensors(fx);
    const auto dir = temp_dir("vae_cli_dec");
    const auto vae = official_vae_with_stats(dir, g);
    auto r = run_surgeon("decode --vae " + vae + " --latents " + fx + " --key in.latents_normalized --normalized --out " +
                         dir + "/video.safetensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto out = load_safetensors(dir + "/video.safetensors");
    EXPECT_LE(rel_error(out.at("out.video"), g.at("out.decoded_clamped")), kGoldenRelTol);
    // Straight to video files.
    for (const char* ext : {".mp4", ".gif", ".png"}) {
        auto rv = run_surgeon("decode --vae " + vae + " --latents " + fx + " --key in.latents_normalized --normalized " +
                              "--out " + dir + "/video" + ext);
        EXPECT_EQ(rv.exit_code, 0) << ext << ": " << rv.err;
        EXPECT_TRUE(fs::file_size(dir + "/video" + ext) > 0) << ext;
    }
    remove_tree(dir);
}

TEST(VAECli, EncodeMatchesGolden) {
    const auto fx = golden("vae_official.safetensors");
    SURGEON_REQUIRE_GOLDEN(fx);
    const auto g = load_safetensors(fx);
    const auto dir = temp_dir("vae_cli_enc");
    const auto vae = official_vae_with_stats(dir, g);
    auto r = run_surgeon("encode --vae " + vae + " --video " + fx + " --key in.video --out " + dir + "/raw.safetensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LE(rel_error(load_safetensors(dir + "/raw.safetensors").at("out.latents"), g.at("out.mu_raw")), kGoldenRelTol);
    r = run_surgeon("encode --vae " + vae + " --video " + fx + " --key in.video --normalized --out " + dir +
                    "/norm.safetensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LE(rel_error(load_safetensors(dir + "/norm.safetensors").at("out.latents"), g.at("out.mu_normalized")),
              kGoldenRelTol);
    // A diffusers folder, with a 4-D video (no batch dim) -> 4-D latents.
    const auto d = load_safetensors(golden("vae_diffusers.safetensors"));
    save_safetensors(dir + "/video4d.safetensors", {{"video", d.at("in.video")[0]}});
    r = run_surgeon("encode --vae " + golden("wan-vae-tiny-diffusers/vae") + " --video " + dir +
                    "/video4d.safetensors --out " + dir + "/d.safetensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LE(rel_error(load_safetensors(dir + "/d.safetensors").at("out.latents"), d.at("out.posterior_mean")[0]),
              kGoldenRelTol);
    remove_tree(dir);
}

TEST(VAECli, EncodeVideoFileThenDecode) {
    const auto fx = golden("vae_official.safetensors");
    SURGEON_REQUIRE_GOLDEN(fx);
    if (std::system("ffmpeg -version >/dev/null 2>&1") != 0) GTEST_SKIP() << "ffmpeg not installed";
    const auto dir = temp_dir("vae_cli_mp4");
    const auto vae = golden("wan-vae-tiny");
    auto r = run_surgeon("decode --vae " + vae + " --latents " + fx + " --key in.latents_normalized --out " + dir +
                         "/v.mp4");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_surgeon("encode --vae " + vae + " --video " + dir + "/v.mp4 --out " + dir + "/z.safetensors");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(load_safetensors(dir + "/z.safetensors").at("out.latents").sizes().vec(),
              (std::vector<int64_t>{4, 2, 4, 6}));
    remove_tree(dir);
}

TEST(VAECli, BadInputsFailCleanly) {
    const auto fx = golden("vae_official.safetensors");
    SURGEON_REQUIRE_GOLDEN(fx);
    const auto dir = temp_dir("vae_cli_bad");
    const auto vae = golden("wan-vae-tiny");
    save_safetensors(dir + "/wrongc.safetensors", {{"z", torch::zeros({1, 5, 2, 4, 6})}});
    save_safetensors(dir + "/nan.safetensors", {{"z", torch::full({4, 2, 4, 6}, NAN)}});
    save_safetensors(dir + "/two.safetensors", {{"a", torch::zeros({4, 2, 4, 6})}, {"b", torch::zeros({4, 2, 4, 6})}});
    save_safetensors(dir + "/v6.safetensors", {{"v", torch::zeros({3, 6, 32, 48})}});
    save_safetensors(dir + "/v255.safetensors", {{"v", torch::full({3, 5, 32, 48}, 200.0)}});
    save_safetensors(dir + "/vodd.safetensors", {{"v", torch::zeros({3, 5, 30, 48})}});
    std::ofstream(dir + "/junk.safetensors") << "garbage";
    std::ofstream(dir + "/trunc.pth") << "PK\x03\x04 not really a zip";
    fs::create_directories(dir + "/badvae");
    fs::copy_file(dir + "/trunc.pth", dir + "/badvae/Wan2.1_VAE.pth");
    const std::string out = dir + "/out.safetensors";
    const std::vector<std::pair<std::string, std::string>> cases{
        {"decode --vae " + vae + " --latents " + dir + "/missing.safetensors --out " + out, "does not exist"},
        {"decode --vae " + dir + "/novae --latents " + fx + " --key in.latents_normalized --out " + out, "does not exist"},
        {"decode --vae " + vae + " --latents " + fx + " --out " + out, "--key"},
        {"decode --vae " + vae + " --latents " + fx + " --key nope --out " + out, "nope"},
        {"decode --vae " + vae + " --latents " + dir + "/wrongc.safetensors --out " + out, "z_dim 4"},
        {"decode --vae " + vae + " --latents " + dir + "/nan.safetensors --out " + out, "NaN"},
        {"decode --vae " + vae + " --latents " + dir + "/two.safetensors --out " + out, "--key"},
        {"decode --vae " + vae + " --latents " + dir + "/junk.safetensors --out " + out, "junk.safetensors"},
        {"decode --vae " + vae + " --latents " + fx + " --key in.latents_normalized --normalized --out " + out,
         "latent mean/std"},
        {"decode --vae " + vae + " --latents " + fx + " --key in.latents_normalized --out " + dir + "/v.avi",
         "unknown extension"},
        {"decode --vae " + dir + "/badvae --latents " + fx + " --key in.latents_normalized --out " + out, "Wan2.1_VAE.pth"},
        {"decode --vae " + vae + " --latents " + fx + " --key in.latents_normalized --device cuda:7 --out " + out,
         "cuda"},
        {"encode --vae " + vae + " --video " + dir + "/v6.safetensors --out " + out, "1 + 4k"},
        {"encode --vae " + vae + " --video " + dir + "/v255.safetensors --out " + out, "[-1, 1]"},
        {"encode --vae " + vae + " --video " + dir + "/vodd.safetensors --out " + out, "multiples of 8"},
        {"encode --vae " + vae + " --video " + fx + " --key in.video --out " + dir + "/z.mp4", ".safetensors"},
        {"encode --vae " + vae + " --video " + dir + "/missing.mp4 --out " + out, "does not exist"},
    };
    for (const auto& [args, needle] : cases) {
        auto r = run_surgeon(args);
        EXPECT_NE(r.exit_code, 0) << args;
        EXPECT_EQ(count_lines(r.err), 1) << args << "\n" << r.err;
        EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
    }
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(dir + "/v.avi"));
    EXPECT_FALSE(fs::exists(dir + "/z.mp4"));
    remove_tree(dir);
}

}  // namespace
}  // namespace surgeon::testing
