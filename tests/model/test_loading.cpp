// Strict loading, config parsing and name conversion: each failure names the tensor, expected and actual.
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/model_io.h"
#include "model/weight_names.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

namespace {
WanConfig tiny_config() {
    WanConfig c;
    c.dim = 32, c.ffn_dim = 64, c.num_heads = 2, c.num_layers = 2, c.in_dim = 4, c.out_dim = 4, c.text_dim = 8;
    c.freq_dim = 16, c.text_len = 6;
    return c;
}
std::string load_error(const TensorMap& m) {
    WanModel model(tiny_config());
    try {
        load_state_dict_strict(*model, m, {}, "ckpt");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST(StrictLoad, AcceptsExactStateDictAndRejectsEveryDefect) {
    WanModel src(tiny_config());
    auto sd = state_dict(*src);
    EXPECT_EQ(load_error(sd), "");

    auto missing = sd;
    missing.erase("blocks.1.ffn.2.weight");
    EXPECT_EQ(load_error(missing), "ckpt: missing tensor 'blocks.1.ffn.2.weight' (expected shape [32, 64])");

    auto extra = sd;
    extra["blocks.0.self_attn.extra"] = torch::ones({3});
    EXPECT_EQ(load_error(extra), "ckpt: unexpected tensor 'blocks.0.self_attn.extra' (shape [3]) not in the model");

    auto shape = sd;
    shape["blocks.0.self_attn.q.weight"] = torch::ones({32, 31});
    EXPECT_EQ(load_error(shape),
              "ckpt: tensor 'blocks.0.self_attn.q.weight' has wrong shape: expected [32, 32], got [32, 31]");

    auto dtype = sd;
    dtype["head.head.bias"] = torch::ones({16}, torch::kInt32);
    EXPECT_EQ(load_error(dtype), "ckpt: tensor 'head.head.bias' has wrong dtype: expected F32, BF16 or F16, got I32");

    auto mixed = sd;
    mixed["patch_embedding.bias"] = mixed["patch_embedding.bias"].to(torch::kBFloat16);
    EXPECT_NE(load_error(mixed).find("like the rest of the checkpoint"), std::string::npos);
}

TEST(StrictLoad, Bf16CheckpointLoadsIntoFp32Model) {
    WanModel src(tiny_config());
    TensorMap bf;
    for (const auto& [n, t] : state_dict(*src)) bf[n] = t.to(torch::kBFloat16);
    WanModel dst(tiny_config());
    load_state_dict_strict(*dst, bf);
    auto d = state_dict(*dst);
    for (const auto& [n, t] : bf) EXPECT_TRUE(torch::equal(d.at(n), t.to(torch::kFloat32))) << n;
}

TEST(StrictLoad, AllowMissingPrefix) {
    WanModel src(tiny_config());
    auto sd = state_dict(*src);
    sd.erase("blocks.0.ffn.0.bias");
    WanModel dst(tiny_config());
    EXPECT_NO_THROW(load_state_dict_strict(*dst, sd, {{"blocks.0.ffn."}}));
}

TEST(Config, OfficialDefaultsAndValidation) {
    auto c = WanConfig::from_official_json(nlohmann::json::parse(
        R"({"dim":1536,"eps":1e-06,"ffn_dim":8960,"freq_dim":256,"in_dim":16,"model_type":"t2v","num_heads":12,"num_layers":30,"out_dim":16,"text_len":512})"));
    EXPECT_EQ(c.text_dim, 4096);  // absent in the published config: class default
    EXPECT_EQ(c.patch_size, (std::array<int64_t, 3>{1, 2, 2}));
    auto err = [](const std::string& j) {
        try {
            WanConfig::from_official_json(nlohmann::json::parse(j));
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(err(R"({"dim":100,"num_heads":12})"), "config: dim 100 is not divisible by num_heads 12");
    EXPECT_EQ(err(R"({"dim":-5})"), "config: 'dim' must be positive, got -5");
    EXPECT_EQ(err(R"({"dim":"big"})"), "config.json: config key 'dim' has the wrong type (\"big\")");
    EXPECT_EQ(err(R"({"model_type":"i2v"})"), "config: model_type 'i2v' is not supported (only 't2v')");
    EXPECT_EQ(err(R"({"patch_size":[1,2]})"), "config.json: config key 'patch_size' must be 3 integers, got [1,2]");
}

TEST(Config, DiffusersConfig) {
    auto c = WanConfig::from_diffusers_json(nlohmann::json::parse(
        R"({"_class_name":"WanTransformer3DModel","num_attention_heads":12,"attention_head_dim":128,"in_channels":16,"out_channels":16,"text_dim":4096,"freq_dim":256,"ffn_dim":8960,"num_layers":30,"cross_attn_norm":true,"qk_norm":"rms_norm_across_heads","eps":1e-06,"patch_size":[1,2,2]})"));
    EXPECT_EQ(c.dim, 1536);
    EXPECT_EQ(c.num_parameters(), 1418996800LL);
}

TEST(WeightNames, RoundTripEveryOfficialName) {
    WanModel m(tiny_config());
    for (const auto& [n, t] : state_dict(*m)) EXPECT_EQ(diffusers_to_official(official_to_diffusers(n)), n);
    EXPECT_EQ(official_to_diffusers("blocks.3.norm3.weight"), "blocks.3.norm2.weight");
    EXPECT_EQ(official_to_diffusers("head.modulation"), "scale_shift_table");
    EXPECT_EQ(official_to_diffusers("blocks.0.modulation"), "blocks.0.scale_shift_table");
    EXPECT_THROW(diffusers_to_official("blocks.0.attn1.to_x.weight"), Error);
}

TEST(ModelFolder, DetectionAndErrors) {
    auto dir = temp_dir("folder");
    auto err = [](const std::string& p) {
        try {
            find_model_folder(p);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(err(dir + "/nope").find("does not exist"), std::string::npos);
    EXPECT_NE(err(dir).find("no config.json"), std::string::npos);
    { std::ofstream(dir + "/config.json") << "{}"; }
    EXPECT_NE(err(dir).find("no diffusion_pytorch_model.safetensors"), std::string::npos);
}

TEST(ModelInputs, BadInputsAreRejectedWithNames) {
    WanModel m(tiny_config());
    auto x = torch::randn({1, 4, 2, 4, 4}), t = torch::tensor({10.0}), c = torch::randn({1, 3, 8});
    auto err = [&](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& d) {
        try {
            m->check_inputs(a, b, d);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(err(x, t, c), "");
    EXPECT_EQ(err(torch::randn({1, 3, 2, 4, 4}), t, c), "tensor 'latents': expected shape [*, 4, *, *, *], got [1, 3, 2, 4, 4]");
    EXPECT_NE(err(torch::randn({1, 4, 2, 5, 4}), t, c).find("not a positive multiple of the patch size 2"), std::string::npos);
    auto nan = x.clone();
    nan[0][0][0][0][0] = std::nan("");
    EXPECT_EQ(err(nan, t, c), "tensor 'latents' contains NaN or Inf");
    EXPECT_EQ(err(x, t, torch::randn({1, 7, 8})), "tensor 'context': 7 text tokens, expected 1..6 (text_len)");
    EXPECT_EQ(err(x, torch::tensor({1.0, 2.0, 3.0}), c), "tensor 'timestep': expected shape [1] (one per sample), got [3]");
    // Training loops switch the (syncing) finiteness check off; shapes are still checked.
    m->set_finite_checks(false);
    EXPECT_EQ(err(nan, t, c), "");
    EXPECT_EQ(err(torch::randn({1, 3, 2, 4, 4}), t, c), "tensor 'latents': expected shape [*, 4, *, *, *], got [1, 3, 2, 4, 4]");
}
