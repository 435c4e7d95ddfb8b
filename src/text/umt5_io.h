// Text-encoder folders and strict loading. Accepted layouts of DIR:
//  * official Wan2.1: models_t5_umt5-xxl-enc-bf16.pth (Wan's names, torch.save zip) + google/umt5-xxl/spiece.model
//    (or tokenizer/spiece.model); the encoder's shape is inferred from the tensors (Wan hard-codes umt5_xxl);
//  * diffusers Wan pipeline, or any folder with text_encoder/ (transformers UMT5EncoderModel: config.json +
//    model.safetensors or model.safetensors.index.json) and tokenizer/spiece.model.
// Loading is strict: a missing, unexpected or wrong-shape tensor is a one-line error naming the tensor (in the
// file's own naming), the expected and the actual value.
#pragma once
#include <torch/torch.h>

#include <string>

#include "text/umt5_encoder.h"
#include "text/umt5_tokenizer.h"

namespace surgeon::text {

inline constexpr const char* kOfficialT5Checkpoint = "models_t5_umt5-xxl-enc-bf16.pth";

struct TextEncoderFolder {
    std::string root;
    std::string weights_path;   // .pth, .safetensors or .safetensors.index.json
    std::string config_path;    // transformers config.json; empty for the official layout
    std::string tokenizer_path; // spiece.model
    bool official_names = false;
    int64_t text_len = 512;     // the DiT's text_len where DIR has an official config.json, else 512
};

// Finds the text encoder and tokenizer of DIR (layouts above); a one-line error lists what was looked for.
TextEncoderFolder find_text_encoder_folder(const std::string& dir);
// True if find_text_encoder_folder would succeed (does not read weights).
bool has_text_encoder(const std::string& dir);

// Checks `tensors` (official names; `hf_names` = the file used transformers' names, reported in errors) against
// the encoder, then copies them (converted to the encoder's dtype).
void load_umt5_weights(UMT5Encoder& model, const TensorMap& tensors, bool hf_names, const std::string& source);

struct LoadedTextEncoder {
    UMT5Encoder model{nullptr};
    UMT5Tokenizer tokenizer;
    TextEncoderFolder folder;
};
// `dtype` is float32 or bfloat16 (Wan runs umT5 in bf16: norm statistics and softmax stay fp32). Eval mode.
LoadedTextEncoder load_text_encoder(const std::string& dir, torch::Device device = torch::kCPU,
                                    torch::ScalarType dtype = torch::kFloat32);

}  // namespace surgeon::text
