// Name conversion official <-> diffusers for the Wan2.1 DiT, following TRANSFORMER_KEYS_RENAME_DICT of
// diffusers' scripts/convert_wan_to_diffusers.py (see shared/docs/wan-reference.md section 2.1).
#include "model/weight_names.h"

#include <regex>
#include <utility>
#include <vector>

#include "core/error.h"

namespace surgeon {
namespace {

// (official, diffusers) pairs of whole names outside the blocks.
const std::vector<std::pair<std::string, std::string>> kTopLevel = {
    {"patch_embedding.weight", "patch_embedding.weight"},
    {"patch_embedding.bias", "patch_embedding.bias"},
    {"text_embedding.0.weight", "condition_embedder.text_embedder.linear_1.weight"},
    {"text_embedding.0.bias", "condition_embedder.text_embedder.linear_1.bias"},
    {"text_embedding.2.weight", "condition_embedder.text_embedder.linear_2.weight"},
    {"text_embedding.2.bias", "condition_embedder.text_embedder.linear_2.bias"},
    {"time_embedding.0.weight", "condition_embedder.time_embedder.linear_1.weight"},
    {"time_embedding.0.bias", "condition_embedder.time_embedder.linear_1.bias"},
    {"time_embedding.2.weight", "condition_embedder.time_embedder.linear_2.weight"},
    {"time_embedding.2.bias", "condition_embedder.time_embedder.linear_2.bias"},
    {"time_projection.1.weight", "condition_embedder.time_proj.weight"},
    {"time_projection.1.bias", "condition_embedder.time_proj.bias"},
    {"head.modulation", "scale_shift_table"},
    {"head.head.weight", "proj_out.weight"},
    {"head.head.bias", "proj_out.bias"},
};

// (official, diffusers) suffixes inside `blocks.N.`.
const std::vector<std::pair<std::string, std::string>> kBlock = {
    {"modulation", "scale_shift_table"},
    {"self_attn.q.weight", "attn1.to_q.weight"},
    {"self_attn.q.bias", "attn1.to_q.bias"},
    {"self_attn.k.weight", "attn1.to_k.weight"},
    {"self_attn.k.bias", "attn1.to_k.bias"},
    {"self_attn.v.weight", "attn1.to_v.weight"},
    {"self_attn.v.bias", "attn1.to_v.bias"},
    {"self_attn.o.weight", "attn1.to_out.0.weight"},
    {"self_attn.o.bias", "attn1.to_out.0.bias"},
    {"self_attn.norm_q.weight", "attn1.norm_q.weight"},
    {"self_attn.norm_k.weight", "attn1.norm_k.weight"},
    {"norm3.weight", "norm2.weight"},  // diffusers renames the affine cross-attention norm
    {"norm3.bias", "norm2.bias"},
    {"cross_attn.q.weight", "attn2.to_q.weight"},
    {"cross_attn.q.bias", "attn2.to_q.bias"},
    {"cross_attn.k.weight", "attn2.to_k.weight"},
    {"cross_attn.k.bias", "attn2.to_k.bias"},
    {"cross_attn.v.weight", "attn2.to_v.weight"},
    {"cross_attn.v.bias", "attn2.to_v.bias"},
    {"cross_attn.o.weight", "attn2.to_out.0.weight"},
    {"cross_attn.o.bias", "attn2.to_out.0.bias"},
    {"cross_attn.norm_q.weight", "attn2.norm_q.weight"},
    {"cross_attn.norm_k.weight", "attn2.norm_k.weight"},
    {"ffn.0.weight", "ffn.net.0.proj.weight"},
    {"ffn.0.bias", "ffn.net.0.proj.bias"},
    {"ffn.2.weight", "ffn.net.2.weight"},
    {"ffn.2.bias", "ffn.net.2.bias"},
};

std::string convert(const std::string& name, bool to_official) {
    for (const auto& [off, dif] : kTopLevel)
        if (name == (to_official ? dif : off)) return to_official ? off : dif;
    static const std::regex block_re(R"(^blocks\.(\d+)\.(.+)$)");
    std::smatch m;
    if (std::regex_match(name, m, block_re)) {
        const std::string rest = m[2];
        for (const auto& [off, dif] : kBlock)
            if (rest == (to_official ? dif : off)) return "blocks." + m[1].str() + "." + (to_official ? off : dif);
    }
    fail("tensor '{}' has no {} name (unexpected tensor for a Wan2.1 T2V transformer)", name,
         to_official ? "official" : "diffusers");
}

}  // namespace

std::string diffusers_to_official(const std::string& name) { return convert(name, true); }
std::string official_to_diffusers(const std::string& name) { return convert(name, false); }

TensorMap to_official_names(const TensorMap& tensors, WeightNaming from) {
    if (from == WeightNaming::Official) return tensors;
    TensorMap out;
    for (const auto& [name, t] : tensors) {
        auto n = diffusers_to_official(name);
        SURGEON_CHECK(!out.count(n), "tensors map twice onto '{}'", n);
        out[n] = t;
    }
    return out;
}

WeightNaming detect_naming(const TensorMap& tensors) {
    for (const auto& [name, t] : tensors)
        if (name.rfind("condition_embedder.", 0) == 0 || name.rfind("proj_out.", 0) == 0 ||
            name.find(".attn1.") != std::string::npos)
            return WeightNaming::Diffusers;
    return WeightNaming::Official;
}

}  // namespace surgeon
