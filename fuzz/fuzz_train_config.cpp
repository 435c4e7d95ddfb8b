// A training config (surgeon train --config): model, world, sampling, text encoder and the train table.
#include "core/json_limits.h"
#include "fuzz_common.h"
#include "pipelines/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* text = reinterpret_cast<const char*>(data);
    surgeon::fuzz::expect_clean([&] {
        const auto c = surgeon::TrainConfig::from_json(surgeon::parse_json_bounded(text, text + size, "train.json"));
        surgeon::check_world_seeds(c);
        (void)c.to_json().dump();
    });
    return 0;
}
