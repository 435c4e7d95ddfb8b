// Wan-VAE structure and loading: official key names and shapes of the published config, the chunk
// frame counts (1 -> 1, later -> 4), strict loading errors, and truncated / malformed .pth files.
// Run: ctest --test-dir build-vae -R 'VAEModel|VAELoad'
#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "testing/testing.h"
#include "vae/vae_io.h"
#include "vae/vae_names.h"

namespace surgeon::testing {
namespace {
namespace fs = std::filesystem;

vae::WanVAEConfig tiny_config() {
    vae::WanVAEConfig c;
    c.dim = 8, c.z_dim = 4, c.dim_mult = {1, 2, 2, 2}, c.num_res_blocks = 1;
    return c;
}


TEST(VAEModel, PublishedConfigKeysAndSizes) {
    vae::WanVAE model(vae::WanVAEConfig{});
    auto params = model->named_parameters();
    EXPECT_EQ(params.size(), 194u);  // wan-reference.md §5.1
    int64_t n = 0, n_enc = 0, n_dec = 0;
    for (const auto& item : params) {
        n += item.value().numel();
        if (item.key().rfind("encoder.", 0) == 0) n_enc += item.value().numel();
        if (item.key().rfind("decoder.", 0) == 0) n_dec += item.value().numel();
    }
    EXPECT_EQ(n, 126892531);
    EXPECT_EQ(n_enc, 53595872);
    EXPECT_EQ(n_dec, 73295331);
    const std::map<std::string, std::vector<int64_t>> expected{
        {"encoder.conv1.weight", {96, 3, 3, 3, 3}},
        {"encoder.downsamples.5.time_conv.weight", {192, 192, 3, 1, 1}},
        {"encoder.downsamples.3.shortcut.weight", {192, 96, 1, 1, 1}},
        {"encoder.middle.1.norm.gamma", {384, 1, 1}},
        {"encoder.head.2.weight", {32, 384, 3, 3, 3}},
        {"conv1.weight", {32, 32, 1, 1, 1}},
        {"conv2.weight", {16, 16, 1, 1, 1}},
        {"decoder.conv1.weight", {384, 16, 3, 3, 3}},
        {"decoder.upsamples.4.shortcut.weight", {384, 192, 1, 1, 1}},
        {"decoder.upsamples.3.resample.1.weight", {192, 384, 3, 3}},
        {"decoder.upsamples.3.time_conv.weight", {768, 384, 3, 1, 1}},
        {"decoder.upsamples.11.resample.1.weight", {96, 192, 3, 3}},
        {"decoder.head.2.weight", {3, 96, 3, 3, 3}},
        {"decoder.upsamples.0.residual.0.gamma", {384, 1, 1, 1}},
    };
    for (const auto& [k, shape] : expected) {
        ASSERT_TRUE(params.contains(k)) << k;
        EXPECT_EQ(params[k].sizes().vec(), shape) << k;
    }
    EXPECT_EQ(vae::official_to_diffusers_vae_name("decoder.upsamples.7.time_conv.weight", model->config()),
              "decoder.up_blocks.1.upsamplers.0.time_conv.weight");
    EXPECT_EQ(vae::official_to_diffusers_vae_name("decoder.upsamples.12.residual.6.bias", model->config()),
              "decoder.up_blocks.3.resnets.0.conv2.bias");
}

TEST(VAEModel, ChunkFrameCounts) {
    torch::manual_seed(0);
    vae::WanVAE model(tiny_config());
    auto z = torch::randn({1, 4, 3, 2, 3});
    auto video = model->decode(z);  // first latent frame -> 1 frame, each later one -> 4
    EXPECT_EQ(video.sizes().vec(), (std::vector<int64_t>{1, 3, 9, 16, 24}));
    auto post = model->encode(torch::rand({1, 3, 9, 16, 24}) * 2 - 1);
    EXPECT_EQ(post.mean.sizes().vec(), (std::vector<int64_t>{1, 4, 3, 2, 3}));
    // Causality: changing the last frames leaves the first latent frame unchanged.
    auto v1 = torch::rand({1, 3, 5, 16, 24});
    auto v2 = v1.clone();
    v2.slice(2, 1, 5).uniform_();
    auto m1 = model->encode(v1).mean, m2 = model->encode(v2).mean;
    EXPECT_TRUE(torch::allclose(m1.select(2, 0), m2.select(2, 0)));
    EXPECT_FALSE(torch::allclose(m1.select(2, 1), m2.select(2, 1)));
}

TEST(VAELoad, StrictErrorsNameTheTensor) {
    vae::WanVAE model(tiny_config());
    TensorMap w;
    for (const auto& item : model->named_parameters()) w[item.key()] = item.value().detach().clone();
    auto missing = w;
    missing.erase("decoder.head.2.bias");
    EXPECT_NE(error_of([&] { vae::load_vae_weights(model, missing, "x.safetensors"); })
                  .find("missing tensor 'decoder.head.2.bias' (expected shape [3])"),
              std::string::npos);
    auto extra = w;
    extra["decoder.head.3.weight"] = torch::zeros({2});
    EXPECT_NE(error_of([&] { vae::load_vae_weights(model, extra, "x.safetensors"); })
                  .find("unexpected tensor 'decoder.head.3.weight'"),
              std::string::npos);
    auto wrong = w;
    wrong["conv2.weight"] = torch::zeros({4, 4, 1, 1});
    EXPECT_NE(error_of([&] { vae::load_vae_weights(model, wrong, "x.safetensors"); })
                  .find("tensor 'conv2.weight' has shape [4, 4, 1, 1], expected [4, 4, 1, 1, 1]"),
              std::string::npos);
    auto ints = w;
    ints["conv2.bias"] = torch::zeros({4}, torch::kInt64);
    EXPECT_NE(error_of([&] { vae::load_vae_weights(model, ints, "x.safetensors"); }).find("expected a float type"),
              std::string::npos);
    // A bf16 copy is accepted and converted.
    TensorMap half;
    for (const auto& [k, v] : w) half[k] = v.to(torch::kBFloat16);
    EXPECT_NO_THROW(vae::load_vae_weights(model, half, "x.safetensors"));
}

TEST(VAELoad, TruncatedAndMalformedPth) {
    const auto src = golden("wan-vae-tiny/Wan2.1_VAE.pth");
    SURGEON_REQUIRE_GOLDEN(src);
    const auto dir = temp_dir("vae_pth");
    std::ifstream in(src, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto write = [&](const std::string& name, const std::string& data) {
        std::ofstream out(dir + "/" + name, std::ios::binary);
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        return dir + "/" + name;
    };
    for (size_t keep : {bytes.size() / 2, bytes.size() - 100, size_t{10}, size_t{0}}) {
        const auto p = write("trunc.pth", bytes.substr(0, keep));
        const auto msg = error_of([&] { vae::read_torch_checkpoint(p); });
        EXPECT_NE(msg.find("trunc.pth"), std::string::npos) << keep << ": " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    // Corrupt the pickle (data.pkl is stored uncompressed near the start): the zip CRC or unpickler catches it.
    auto bad = bytes;
    const auto pos = bad.find("encoder.conv1.weight");
    ASSERT_NE(pos, std::string::npos);
    for (size_t i = pos - 40; i < pos + 200; ++i) bad[i] = static_cast<char>(0xff);
    const auto p = write("bad.pth", bad);
    const auto msg = error_of([&] { vae::read_torch_checkpoint(p); });
    EXPECT_NE(msg.find("bad.pth"), std::string::npos) << msg;
    // Not a zip at all.
    const auto legacy = write("legacy.pth", std::string("\x80\x02}q\x00.", 6));
    EXPECT_NE(error_of([&] { vae::read_torch_checkpoint(legacy); }).find("not a zip-format torch checkpoint"),
              std::string::npos);
    remove_tree(dir);
}

TEST(VAELoad, WrongConfigNamesTheTensor) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-vae-tiny/Wan2.1_VAE.safetensors"));
    const auto dir = temp_dir("vae_cfg");
    fs::copy_file(golden("wan-vae-tiny/Wan2.1_VAE.safetensors"), dir + "/Wan2.1_VAE.safetensors");
    // No config.json: the published config is assumed and the first mismatch is reported with a hint.
    const auto msg = error_of([&] { vae::load_vae(dir); });
    EXPECT_NE(msg.find("expected"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no config.json"), std::string::npos) << msg;
    EXPECT_NE(error_of([&] { vae::load_vae(dir + "/nope"); }).find("does not exist"), std::string::npos);
    remove_tree(dir);
}

}  // namespace
}  // namespace surgeon::testing
