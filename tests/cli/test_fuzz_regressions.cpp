// Inputs the libFuzzer harnesses (fuzz/, scripts/fuzz.sh) found, replayed through the same parsers in the normal
// suite. Each one also lives in fuzz/regressions/<harness>/ so the fuzzers start from it.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/wan_config.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
namespace fs = std::filesystem;
using testing::error_of;

// fuzz_model_config: a config with freq_dim 6.7e15 passed validate() and num_parameters() overflowed int64
// (UBSan: signed integer overflow in freq_dim * dim). Every size is bounded now.
TEST(FuzzRegressions, ModelConfigWithAbsurdFreqDimIsRefused) {
    const auto j = nlohmann::json::parse(R"({"_class_nrsion": "0.30.0", "eps": 1e-07, "afn_dim": 96,
                                            "freq_dim": 6666666666666632, "inte_dim": 25})");
    const auto msg = error_of([&] { WanConfig::from_official_json(j); });
    EXPECT_NE(msg.find("config: absurd sizes (freq_dim 6666666666666632"), std::string::npos) << msg;
    for (const char* key : {"in_dim", "out_dim", "text_dim"}) {
        auto k = nlohmann::json::parse(R"({"freq_dim": 256})");
        k[key] = int64_t(1) << 40;
        EXPECT_NE(error_of([&] { WanConfig::from_official_json(k); }).find("absurd sizes"), std::string::npos) << key;
    }
    // The largest accepted config still counts its parameters without overflow.
    auto big = nlohmann::json::parse(R"({"dim": 65536, "ffn_dim": 262144, "num_heads": 1024, "num_layers": 1024,
                                        "freq_dim": 65536, "in_dim": 65536, "out_dim": 65536, "text_dim": 65536,
                                        "patch_size": [64, 64, 64]})");
    EXPECT_GT(WanConfig::from_official_json(big).num_parameters(), 0);
}

// Every saved finding parses to a one-line surgeon::Error or succeeds (never a raw exception or a crash).
TEST(FuzzRegressions, SavedFindingsFailCleanly) {
    const fs::path dir = fs::path(SURGEON_SOURCE_DIR) / "fuzz" / "regressions" / "model_config";
    ASSERT_TRUE(fs::is_directory(dir));
    for (const auto& e : fs::directory_iterator(dir)) {
        std::ifstream in(e.path());
        std::stringstream ss;
        ss << in.rdbuf();
        const auto j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) continue;
        const auto msg = error_of([&] {
            auto c = WanConfig::from_official_json(j);
            (void)c.num_parameters();
        });
        EXPECT_EQ(msg.find('\n'), std::string::npos) << e.path();
    }
}

}  // namespace
}  // namespace surgeon
