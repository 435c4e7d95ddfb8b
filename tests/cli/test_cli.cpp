// The `surgeon` program end to end: forward/sample/inspect on the golden folders, and for bad input a single
// clear line on stderr, a non-zero exit, and no output file.
#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;
namespace fs = std::filesystem;

namespace {
int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }
void expect_clean_failure(const CommandResult& r, const std::string& needle, const std::string& out_path) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
    EXPECT_EQ(lines(r.err), 1) << "stderr: " << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    if (!out_path.empty()) EXPECT_FALSE(fs::exists(out_path)) << out_path;
}
}  // namespace

TEST(Cli, ForwardMatchesGolden) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto dir = temp_dir("cli_fwd");
    for (auto folder : {"wan-t2v-tiny", "wan-t2v-tiny-diffusers", "wan-t2v-tiny-sharded"}) {
        auto r = run_surgeon("forward --model " + golden(folder) + " --inputs " + golden("dit_forward.safetensors") +
                             " --out " + dir + "/v.safetensors");
        ASSERT_EQ(r.exit_code, 0) << r.err;
        auto out = load_safetensors(dir + "/v.safetensors");
        auto ref = load_safetensors(golden("dit_forward.safetensors"));
        EXPECT_LE(rel_error(out.at("out.velocity"), ref.at("out.velocity_official")), kGoldenRelTol) << folder;
    }
    auto r = run_surgeon("forward --model " + golden("wan-t2v-tiny") + " --inputs " + golden("dit_forward.safetensors") +
                         " --out " + dir + "/v.safetensors --dtype bf16 --attention-impl reference --dump-activations");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto out = load_safetensors(dir + "/v.safetensors");
    EXPECT_TRUE(out.count("act.blocks.1.self_attn.q"));
}

TEST(Cli, SampleTraceMatchesGolden) {
    SURGEON_REQUIRE_GOLDEN(golden("sampler_official_unipc.safetensors"));
    auto dir = temp_dir("cli_sample");
    auto r = run_surgeon("sample --model " + golden("wan-t2v-tiny") + " --inputs " +
                         golden("sampler_official_unipc.safetensors") + " --out " + dir +
                         "/s.safetensors --solver unipc --steps 6 --shift 5 --guidance 5 --trace");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto out = load_safetensors(dir + "/s.safetensors");
    auto ref = load_safetensors(golden("sampler_official_unipc.safetensors"));
    EXPECT_LE(rel_error(out.at("out.latents"), ref.at("final")), kGoldenRelTol);
    EXPECT_LE(rel_error(out.at("out.step3"), ref.at("step3")), kGoldenRelTol);
}

TEST(Cli, InspectPrintsConfigAndTensors) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny-diffusers"));
    auto r = run_surgeon("inspect " + golden("wan-t2v-tiny-diffusers"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("diffusers names"), std::string::npos);
    EXPECT_NE(r.out.find("parameters: 41648 in 69 tensors"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("blocks.1.self_attn.norm_q.weight"), std::string::npos);
}

TEST(Cli, HelpEverywhere) {
    for (auto cmd : {"", "forward ", "sample ", "inspect "}) {
        auto r = run_surgeon(std::string(cmd) + "--help");
        EXPECT_EQ(r.exit_code, 0) << cmd;
        EXPECT_NE(r.out.find("--"), std::string::npos) << cmd;
    }
}

TEST(Cli, BadInputFailsCleanly) {
    SURGEON_REQUIRE_GOLDEN(golden("dit_forward.safetensors"));
    auto dir = temp_dir("cli_bad");
    const std::string out = dir + "/o.safetensors";
    const std::string model = " --model " + golden("wan-t2v-tiny");
    const std::string inputs = " --inputs " + golden("dit_forward.safetensors");
    // Unknown flag / value.
    expect_clean_failure(run_surgeon("forward --bogus" + model + inputs + " --out " + out), "--bogus", out);
    expect_clean_failure(run_surgeon("forward" + model + inputs + " --out " + out + " --dtype fp8"), "fp8", out);
    expect_clean_failure(run_surgeon("sample" + model + " --inputs " + golden("sampler_official_unipc.safetensors") +
                                     " --out " + out + " --solver ddim"),
                         "ddim", out);
    expect_clean_failure(run_surgeon("sample" + model + " --inputs " + golden("sampler_official_unipc.safetensors") +
                                     " --out " + out + " --shift -1"),
                         "--shift: -1 is outside (0, 1000]", out);
    expect_clean_failure(run_surgeon("forward" + model + inputs + " --out " + out + " --device cuda:7"), "cuda", out);
    // Missing model folder, truncated checkpoint, inconsistent config.
    expect_clean_failure(run_surgeon("forward --model " + dir + "/none" + inputs + " --out " + out), "does not exist", out);
    const std::string broken = dir + "/broken";
    fs::create_directories(broken);
    fs::copy(golden("wan-t2v-tiny/config.json"), broken + "/config.json");
    {
        std::ifstream in(golden("wan-t2v-tiny/diffusion_pytorch_model.safetensors"), std::ios::binary);
        std::string all((std::istreambuf_iterator<char>(in)), {});
        std::ofstream(broken + "/diffusion_pytorch_model.safetensors", std::ios::binary) << all.substr(0, all.size() / 2);
    }
    expect_clean_failure(run_surgeon("forward --model " + broken + inputs + " --out " + out), "truncated", out);
    { std::ofstream(broken + "/config.json") << R"({"dim": 32, "num_heads": 3})"; }
    expect_clean_failure(run_surgeon("forward --model " + broken + inputs + " --out " + out), "not divisible", out);
    // Wrong-shape weights: a config that disagrees with the checkpoint.
    fs::copy(golden("wan-t2v-tiny/diffusion_pytorch_model.safetensors"), broken + "/diffusion_pytorch_model.safetensors",
             fs::copy_options::overwrite_existing);
    { std::ofstream(broken + "/config.json") << R"({"dim": 32, "num_heads": 2, "num_layers": 2, "ffn_dim": 64, "in_dim": 4, "out_dim": 4, "text_dim": 24, "freq_dim": 32, "text_len": 10})"; }
    expect_clean_failure(run_surgeon("forward --model " + broken + inputs + " --out " + out), "wrong shape", out);
    // Missing keys and NaN in the inputs.
    auto in = load_safetensors(golden("dit_forward.safetensors"));
    TensorMap partial{{"in.latents", in.at("in.latents")}, {"in.timestep", in.at("in.timestep")}};
    save_safetensors(dir + "/partial.safetensors", partial);
    expect_clean_failure(run_surgeon("forward" + model + " --inputs " + dir + "/partial.safetensors --out " + out),
                         "missing tensor 'in.context'", out);
    auto nan = in;
    nan["in.latents"] = in.at("in.latents").clone();
    nan["in.latents"].view(-1)[5] = std::numeric_limits<float>::quiet_NaN();
    save_safetensors(dir + "/nan.safetensors", nan);
    expect_clean_failure(run_surgeon("forward" + model + " --inputs " + dir + "/nan.safetensors --out " + out),
                         "contains NaN", out);
    auto bad_shape = in;
    bad_shape["in.context"] = torch::randn({2, 10, 23});
    save_safetensors(dir + "/shape.safetensors", bad_shape);
    expect_clean_failure(run_surgeon("forward" + model + " --inputs " + dir + "/shape.safetensors --out " + out),
                         "tensor 'context': expected shape [2, *, 24]", out);
    // Output folder missing: nothing written anywhere.
    expect_clean_failure(run_surgeon("forward" + model + inputs + " --out " + dir + "/no/such/dir/o.safetensors"),
                         "output folder does not exist", "");
}
