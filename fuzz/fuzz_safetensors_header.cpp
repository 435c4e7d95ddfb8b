// The safetensors header (8-byte size + JSON) of a file of the given bytes: every accepted tensor lies inside the
// data section with the byte count of its dtype and shape.
#include "core/safetensors_header.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    surgeon::fuzz::expect_clean([&] {
        const auto h = surgeon::parse_safetensors_header(data, size, "fuzz.safetensors");
        for (const auto& t : h.tensors)
            if (t.end < t.begin || h.data_offset + t.end > size) std::abort();
    });
    return 0;
}
