// The bundled teacher (models/synth-teacher) as shipped: its folder loads strictly with the record it carries
// (position channels, in_dim 6, bf16 shards of at most 16 MiB), and its weights are trained: one denoising step
// from sigma 0.5 removes most of the noise from a ground-truth clip of a held-out world seed.
#include <filesystem>

#include "model/model_io.h"
#include "pipelines/synth_model.h"
#include "testing/held_out_denoise.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;
namespace fs = std::filesystem;

namespace {
const std::string kTeacher = std::string(SURGEON_SOURCE_DIR) + "/models/synth-teacher";
}

TEST(BundledTeacher, FolderMatchesItsRecord) {
    auto m = load_synth_model(kTeacher);
    const auto& c = m.dit->config();
    EXPECT_TRUE(m.settings.position_channels);
    EXPECT_EQ(c.in_dim, 6);
    EXPECT_EQ(c.out_dim, 3);
    EXPECT_EQ(c.dim, 256);
    EXPECT_EQ(c.num_layers, 8);
    EXPECT_EQ(m.settings.size.frames, 16);
    int shards = 0;
    for (const auto& e : fs::directory_iterator(kTeacher)) {
        if (e.path().extension() != ".safetensors" || e.path().filename() == "text_encoder.safetensors") continue;
        ++shards;
        EXPECT_LE(fs::file_size(e.path()), 16u << 20) << e.path();
        for (const auto& [name, t] : load_safetensors(e.path().string())) EXPECT_EQ(t.scalar_type(), torch::kBFloat16) << name;
    }
    EXPECT_GE(shards, 1);
}

TEST(BundledTeacher, DenoisesAHeldOutClip) {
    auto m = load_synth_model(kTeacher);
    const auto r = held_out_denoise(m, /*with_empty_prompt=*/true);
    EXPECT_LT(r.denoised, 0.1 * r.noisy) << "noisy " << r.noisy << ", denoised " << r.denoised;
    // The empty prompt denoises worse than the true one (the text conditions the model).
    EXPECT_LT(r.denoised, r.empty);
}
