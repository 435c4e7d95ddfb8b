// The synthetic world's prompts: the grammar parser and the world tokenizer.
#include "fuzz_common.h"
#include "world/prompt.h"
#include "world/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const surgeon::world::Tokenizer tok;
    const std::string text = surgeon::fuzz::as_string(data, size);
    surgeon::fuzz::expect_clean([&] {
        const auto spec = surgeon::world::parse_prompt(text);
        if (surgeon::world::parse_prompt(surgeon::world::prompt(spec)).objects.size() != spec.objects.size()) std::abort();
    });
    surgeon::fuzz::expect_clean([&] {
        const auto ids = tok.encode(text);
        for (auto id : ids)
            if (id < 0 || id >= tok.vocab_size()) std::abort();
        (void)tok.decode(ids);
    });
    return 0;
}
