// An attention plan file, validated for its own block count at the bundled models' head dim (64) on a token grid.
#include "attention/attention_plan.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    surgeon::fuzz::expect_clean([&] {
        const auto plan = surgeon::AttentionPlan::parse(surgeon::fuzz::as_string(data, size), "plan.json");
        const surgeon::TokenGrid grid{4, 8, 8};
        surgeon::validate_plan(plan, static_cast<int64_t>(plan.blocks.size()), 64, &grid);
        (void)surgeon::AttentionPlan::parse(plan.dump(), "round trip");
    });
    return 0;
}
