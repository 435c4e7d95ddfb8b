// transformers UMT5EncoderModel names -> Wan's official T5Encoder names (wan/modules/t5.py):
//   shared.weight / encoder.embed_tokens.weight            -> token_embedding.weight
//   encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight  -> blocks.N.attn.{q,k,v,o}.weight
//   encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight -> blocks.N.pos_embedding.embedding.weight
//   encoder.block.N.layer.0.layer_norm.weight               -> blocks.N.norm1.weight
//   encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}   -> blocks.N.ffn.{gate.0,fc1,fc2}
//   encoder.block.N.layer.1.layer_norm.weight               -> blocks.N.norm2.weight
//   encoder.final_layer_norm.weight                         -> norm.weight
#pragma once
#include <optional>
#include <string>

#include "core/safetensors.h"

namespace surgeon::text {

// The official name, or nullopt for a name outside the table (kept as is, so strict loading reports it).
std::optional<std::string> umt5_official_name(const std::string& hf_name);
// Renames a whole transformers state dict. The tied embedding may appear under both of its names (the
// copies must agree); any other name that maps onto an already used official name is an error.
TensorMap umt5_from_hf_names(const TensorMap& hf, const std::string& source);

}  // namespace surgeon::text
