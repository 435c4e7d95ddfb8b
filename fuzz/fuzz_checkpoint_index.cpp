// A sharded checkpoint's *.safetensors.index.json: accepted shard names never leave the folder.
#include <nlohmann/json.hpp>

#include "core/json_limits.h"
#include "core/safetensors_header.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    surgeon::fuzz::expect_clean([&] {
        const char* text = reinterpret_cast<const char*>(data);
        const auto j = surgeon::parse_json_bounded(text, text + size, "fuzz.index.json");
        for (const auto& [file, names] : surgeon::parse_checkpoint_index(j, "fuzz.index.json"))
            if (file.empty() || file.find('/') != std::string::npos || file.find("..") != std::string::npos || names.empty())
                std::abort();
    });
    return 0;
}
