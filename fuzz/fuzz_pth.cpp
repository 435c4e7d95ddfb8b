// The whole .pth reader (read_torch_checkpoint): zip records, the pickle scan, libtorch's reader, and the tensor
// views checked against their storages. The input is written to a file in /dev/shm (the reader takes a path).
#include <unistd.h>

#include <cstdio>
#include <string>

#include "fuzz_common.h"
#include "vae/vae_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = "/dev/shm/surgeon-fuzz-" + std::to_string(getpid()) + ".pth";
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    surgeon::fuzz::expect_clean([&] {
        const auto tensors = surgeon::vae::read_torch_checkpoint(path);
        for (const auto& [name, t] : tensors)
            if (t.defined() && t.numel() > 0) (void)t.sum().item<double>();  // touches every element
    });
    std::remove(path.c_str());
    return 0;
}
