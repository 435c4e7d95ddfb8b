// encode_prompts: tokenizer + umT5 encoder -> zero-padded context.
#include "text/text_encode.h"

#include "core/error.h"

namespace surgeon::text {

const char* const kWanNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

EncodedPrompts encode_prompts(LoadedTextEncoder& te, const std::vector<std::string>& prompts, int64_t text_len) {
    SURGEON_CHECK(!prompts.empty(), "no prompt to encode");
    auto tok = te.tokenizer.encode_padded(prompts, text_len);
    const auto device = te.model->token_embedding->weight.device();
    const int64_t p = tok.ids.size(0), dim = te.model->config().dim;
    EncodedPrompts out{tok.ids, tok.lens, torch::zeros({p, text_len, dim}, torch::dtype(torch::kFloat).device(device))};
    torch::NoGradGuard ng;
    for (int64_t i = 0; i < p; ++i) {
        const int64_t n = tok.lens[i].item<int64_t>();
        auto ids = tok.ids.index({torch::indexing::Slice(i, i + 1), torch::indexing::Slice(0, n)}).to(device);
        auto hidden = te.model->forward(ids);  // [1, n, dim]
        out.context[i].narrow(0, 0, n).copy_(hidden[0].to(torch::kFloat));
    }
    return out;
}

}  // namespace surgeon::text
