// A model folder's config.json, official and diffusers layouts: accepted configs pass validate() and give a
// parameter count without overflow.
#include "core/json_limits.h"
#include "fuzz_common.h"
#include "model/wan_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* text = reinterpret_cast<const char*>(data);
    surgeon::fuzz::expect_clean([&] {
        const auto j = surgeon::parse_json_bounded(text, text + size, "config.json");
        auto c = surgeon::WanConfig::from_official_json(j);
        c.validate();
        (void)c.num_parameters();
    });
    surgeon::fuzz::expect_clean([&] {
        const auto j = surgeon::parse_json_bounded(text, text + size, "config.json");
        auto c = surgeon::WanConfig::from_diffusers_json(j);
        c.validate();
        (void)c.to_json().dump();
    });
    return 0;
}
