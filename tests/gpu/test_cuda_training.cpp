// `surgeon train` on CUDA, on the tiny config: every precision and both optimisers run, the loss is finite and
// falls, the two optimisers agree (same math; bf16 rounding allowed), and the model exports. Runs in the test
// phase of scripts/gpu_session.sh, before any long training run.
#include <filesystem>

#include "core/fs.h"
#include "pipelines/trainer.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

TEST(CudaTraining, TinyConfigTrainsInEveryPrecisionWithBothOptimisers) {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    auto base = TrainConfig::from_json(
        nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json")));
    base.device = "cuda";
    base.steps = 60;
    for (const std::string dtype : {"fp32", "bf16", "bf16-lean"}) {
        std::vector<double> last;
        for (const std::string optimizer : {"flat", "torch"}) {
            SCOPED_TRACE(dtype + " " + optimizer);
            auto c = base;
            c.dtype = dtype;
            c.optimizer = optimizer;
            auto dir = temp_dir("cuda_train_" + dtype + "_" + optimizer);
            auto r = train_synth_model(c, dir, false, false);
            EXPECT_EQ(r.steps_done, 60);
            auto l = read_losses(dir);
            ASSERT_GE(l.size(), 2u);
            for (double v : l) EXPECT_TRUE(std::isfinite(v));
            EXPECT_LT(l.back(), 0.8 * l.front());
            EXPECT_TRUE(std::filesystem::exists(dir + "/model/surgeon.json"));
            last.push_back(l.back());
        }
        EXPECT_NEAR(last[0], last[1], 0.1 * last[1]) << dtype;  // flat vs torch AdamW
    }
}
