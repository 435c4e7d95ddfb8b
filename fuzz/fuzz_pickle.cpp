// The abstract pickle machine of the .pth checks (nesting depth, cycles, malformed programs) on raw bytes.
#include "fuzz_common.h"
#include "vae/pth_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    surgeon::fuzz::expect_clean([&] { surgeon::vae::check_pickle_structure(data, size, "fuzz.pkl"); });
    return 0;
}
