// Name conversion transformers UMT5 -> Wan official T5Encoder.
#include "text/umt5_names.h"

#include <map>
#include <regex>

#include "core/error.h"

namespace surgeon::text {

std::optional<std::string> umt5_official_name(const std::string& n) {
    if (n == "shared.weight" || n == "encoder.embed_tokens.weight") return "token_embedding.weight";
    if (n == "encoder.final_layer_norm.weight") return "norm.weight";
    static const std::regex re(R"(encoder\.block\.(\d+)\.layer\.([01])\.(.+))");
    std::smatch m;
    if (!std::regex_match(n, m, re)) return std::nullopt;
    static const std::map<std::string, std::string> layer0 = {
        {"SelfAttention.q.weight", "attn.q.weight"},
        {"SelfAttention.k.weight", "attn.k.weight"},
        {"SelfAttention.v.weight", "attn.v.weight"},
        {"SelfAttention.o.weight", "attn.o.weight"},
        {"SelfAttention.relative_attention_bias.weight", "pos_embedding.embedding.weight"},
        {"layer_norm.weight", "norm1.weight"}};
    static const std::map<std::string, std::string> layer1 = {{"DenseReluDense.wi_0.weight", "ffn.gate.0.weight"},
                                                              {"DenseReluDense.wi_1.weight", "ffn.fc1.weight"},
                                                              {"DenseReluDense.wo.weight", "ffn.fc2.weight"},
                                                              {"layer_norm.weight", "norm2.weight"}};
    const auto& table = m[2] == "0" ? layer0 : layer1;
    auto it = table.find(m[3]);
    if (it == table.end()) return std::nullopt;
    return "blocks." + m[1].str() + "." + it->second;
}

TensorMap umt5_from_hf_names(const TensorMap& hf, const std::string& source) {
    TensorMap out;
    std::map<std::string, std::string> origin;
    for (const auto& [name, t] : hf) {
        const auto off = umt5_official_name(name);
        const std::string key = off ? *off : name;
        if (out.count(key)) {
            const bool tied = key == "token_embedding.weight";
            SURGEON_CHECK(tied, "{}: tensors '{}' and '{}' both map to '{}'", source, origin[key], name, key);
            SURGEON_CHECK(out[key].sizes() == t.sizes() && torch::equal(out[key], t.to(out[key].scalar_type())),
                          "{}: tied embeddings '{}' and '{}' differ", source, origin[key], name);
            continue;
        }
        out[key] = t;
        origin[key] = name;
    }
    return out;
}

}  // namespace surgeon::text
