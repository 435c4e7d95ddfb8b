// Prompts -> the text context a Wan DiT takes: tokenized and padded to text_len, encoded by umT5, the hidden
// states of the real tokens kept and the rows after them zeroed (wan/modules/t5.py T5EncoderModel.__call__
// trims to seq_len; WanModel / diffusers' _get_t5_prompt_embeds zero-pad back to text_len).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "text/umt5_io.h"

namespace surgeon::text {

// Wan's default negative prompt (wan/configs/shared_config.py, sample_neg_prompt), used by the official
// generate.py whenever no negative prompt is given.
extern const char* const kWanNegativePrompt;

struct EncodedPrompts {
    torch::Tensor ids;      // [P, N] int64
    torch::Tensor lens;     // [P] int64
    torch::Tensor context;  // [P, N, dim] float32 on the encoder's device; zeros after lens[p]
};

// Each prompt runs through the encoder on its own real tokens (equal to the masked padded batch of the
// references: padded keys get zero attention weight), so the cost does not grow with text_len.
EncodedPrompts encode_prompts(LoadedTextEncoder& te, const std::vector<std::string>& prompts, int64_t text_len);

}  // namespace surgeon::text
