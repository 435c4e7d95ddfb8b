// A block-error table (stage 1's output, stage 2's input; surgeon plan knapsack --table).
#include "core/json_limits.h"
#include "fuzz_common.h"
#include "surgery/block_errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* text = reinterpret_cast<const char*>(data);
    surgeon::fuzz::expect_clean([&] {
        const auto t = surgeon::BlockErrorTable::from_json(surgeon::parse_json_bounded(text, text + size, "table.json"),
                                                           "table.json");
        (void)surgeon::BlockErrorTable::from_json(t.to_json(), "round trip");
    });
    return 0;
}
