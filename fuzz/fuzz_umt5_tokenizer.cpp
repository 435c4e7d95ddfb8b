// Wan's prompt cleaning and the umT5 sentencepiece tokenizer (the tiny fixture's spiece model; SURGEON_SPIECE
// overrides it): ids inside the vocabulary, padded rows of the asked length.
#include <cstdlib>

#include "fuzz_common.h"
#include "text/umt5_tokenizer.h"

#ifndef SURGEON_SOURCE_DIR
#define SURGEON_SOURCE_DIR "."
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const surgeon::text::UMT5Tokenizer tok([] {
        const char* p = std::getenv("SURGEON_SPIECE");
        return std::string(p ? p : SURGEON_SOURCE_DIR "/tests/data/umt5-tiny/tokenizer/spiece.model");
    }());
    const std::string text = surgeon::fuzz::as_string(data, size);
    surgeon::fuzz::expect_clean([&] {
        (void)surgeon::text::clean_prompt(text);
        const auto ids = tok.encode(text);
        for (auto id : ids)
            if (id < 0 || id >= tok.vocab_size()) std::abort();
        const auto padded = tok.encode_padded({text}, 16);
        if (padded.ids.size(1) != 16 || padded.lens[0].item<int64_t>() < 1) std::abort();
    });
    return 0;
}
