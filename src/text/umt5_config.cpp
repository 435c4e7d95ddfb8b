// UMT5Config readers: transformers config.json and inference from official tensor shapes.
#include "text/umt5_config.h"

#include "core/error.h"
#include "core/tensor_checks.h"

namespace surgeon::text {

namespace {

int64_t get_int(const nlohmann::json& j, const char* key, const std::string& source) {
    SURGEON_CHECK(j.contains(key), "{}: missing key '{}'", source, key);
    SURGEON_CHECK(j.at(key).is_number_integer(), "{}: '{}' must be an integer, got {}", source, key,
                  j.at(key).dump());
    return j.at(key).get<int64_t>();
}

const torch::Tensor& need(const TensorMap& t, const std::string& name, int64_t dims, const std::string& source) {
    auto it = t.find(name);
    SURGEON_CHECK(it != t.end(), "{}: missing tensor '{}'", source, name);
    SURGEON_CHECK(it->second.dim() == dims, "{}: tensor '{}' has wrong shape: expected {} dimensions, got {}",
                  source, name, dims, shape_str(it->second.sizes()));
    return it->second;
}

}  // namespace

UMT5Config UMT5Config::from_hf_json(const nlohmann::json& j, const std::string& source) {
    SURGEON_CHECK(j.is_object(), "{}: expected a JSON object", source);
    const std::string type = j.value("model_type", std::string("umt5"));
    SURGEON_CHECK(type == "umt5",
                  "{}: model_type '{}' is not supported (expected 'umt5': a relative attention bias per layer)",
                  source, type);
    const std::string ffn = j.value("feed_forward_proj", std::string("gated-gelu"));
    SURGEON_CHECK(ffn == "gated-gelu", "{}: feed_forward_proj '{}' is not supported (expected 'gated-gelu')", source,
                  ffn);
    const std::string act = j.value("dense_act_fn", std::string("gelu_new"));
    SURGEON_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh",
                  "{}: dense_act_fn '{}' is not supported (expected 'gelu_new')", source, act);
    UMT5Config c;
    c.vocab_size = get_int(j, "vocab_size", source);
    c.dim = get_int(j, "d_model", source);
    c.num_heads = get_int(j, "num_heads", source);
    c.dim_attn = c.num_heads * get_int(j, "d_kv", source);
    c.dim_ffn = get_int(j, "d_ff", source);
    c.num_layers = get_int(j, "num_layers", source);
    c.num_buckets = j.contains("relative_attention_num_buckets")
                        ? get_int(j, "relative_attention_num_buckets", source) : 32;
    c.max_dist = j.contains("relative_attention_max_distance")
                     ? get_int(j, "relative_attention_max_distance", source) : 128;
    c.eps = j.value("layer_norm_epsilon", 1e-6);
    c.validate(source);
    return c;
}

UMT5Config UMT5Config::infer_from_official(const TensorMap& t, const std::string& source) {
    UMT5Config c;
    const auto& emb = need(t, "token_embedding.weight", 2, source);
    c.vocab_size = emb.size(0);
    c.dim = emb.size(1);
    c.dim_attn = need(t, "blocks.0.attn.q.weight", 2, source).size(0);
    c.dim_ffn = need(t, "blocks.0.ffn.fc1.weight", 2, source).size(0);
    const auto& pos = need(t, "blocks.0.pos_embedding.embedding.weight", 2, source);
    c.num_buckets = pos.size(0);
    c.num_heads = pos.size(1);
    int64_t layers = 0;
    for (const auto& [name, v] : t) {
        if (name.rfind("blocks.", 0) != 0) continue;
        const auto dot = name.find('.', 7);
        try {
            layers = std::max<int64_t>(layers, std::stoll(name.substr(7, dot - 7)) + 1);
        } catch (const std::exception&) {
            fail("{}: unexpected tensor '{}' (block index is not a number)", source, name);
        }
    }
    c.num_layers = layers;
    c.validate(source);
    return c;
}

void UMT5Config::validate(const std::string& source) const {
    for (auto [v, name] : {std::pair{vocab_size, "vocab_size"}, {dim, "dim"}, {dim_attn, "dim_attn"},
                           {dim_ffn, "dim_ffn"}, {num_heads, "num_heads"}, {num_layers, "num_layers"},
                           {num_buckets, "num_buckets"}, {max_dist, "max_dist"}})
        SURGEON_CHECK(v > 0, "{}: umT5 {} must be positive, got {}", source, name, v);
    SURGEON_CHECK(dim_attn % num_heads == 0, "{}: umT5 attention width {} is not divisible by num_heads {}", source,
                  dim_attn, num_heads);
    SURGEON_CHECK(num_buckets >= 4, "{}: umT5 num_buckets must be at least 4 (bidirectional), got {}", source,
                  num_buckets);
    SURGEON_CHECK(eps > 0, "{}: umT5 layer_norm_epsilon must be positive, got {}", source, eps);
}

}  // namespace surgeon::text
