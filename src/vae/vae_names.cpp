// Official <-> diffusers Wan-VAE names. The table is built from the official module tree: every official
// key of a model of the given config is mapped forward, and the inverse map converts diffusers files.
#include "vae/vae_names.h"

#include <map>
#include <vector>

#include "core/error.h"

namespace surgeon::vae {

namespace {

// Leaf renames inside one block, official -> diffusers (prefix match on the part after the block).
const std::vector<std::pair<std::string, std::string>> kResidualLeaves = {
    {"residual.0.", "norm1."}, {"residual.2.", "conv1."}, {"residual.3.", "norm2."},
    {"residual.6.", "conv2."}, {"shortcut.", "conv_shortcut."},
};

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::vector<std::string> split_dots(const std::string& s) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == '.') {
            parts.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    return parts;
}

std::string join_from(const std::vector<std::string>& parts, size_t from) {
    std::string out;
    for (size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
    return out;
}

std::string residual_leaf(const std::string& rest, const std::string& official) {
    for (const auto& [from, to] : kResidualLeaves) {
        if (starts_with(rest, from)) return to + rest.substr(from.size());
    }
    fail("VAE name '{}' has no diffusers counterpart", official);
}

int64_t to_index(const std::string& s, const std::string& official) {
    try {
        size_t used = 0;
        const long long v = std::stoll(s, &used);
        if (used == s.size() && v >= 0) return v;
    } catch (const std::exception&) {
    }
    fail("VAE name '{}': expected a block index, got '{}'", official, s);
}

// `middle.{0,1,2}.<rest>` -> `mid_block.{resnets.0, attentions.0, resnets.1}.<rest>`.
std::string middle_name(const std::string& idx, const std::string& rest, const std::string& official) {
    if (idx == "0") return "mid_block.resnets.0." + residual_leaf(rest, official);
    if (idx == "2") return "mid_block.resnets.1." + residual_leaf(rest, official);
    if (idx == "1") return "mid_block.attentions.0." + rest;  // norm.gamma, to_qkv.*, proj.*
    fail("VAE name '{}' has no diffusers counterpart", official);
}

}  // namespace

std::string official_to_diffusers_vae_name(const std::string& official, const WanVAEConfig& c) {
    SURGEON_CHECK(c.attn_scales.empty(), "diffusers VAE names: attn_scales must be empty (diffusers has no such layout)");
    const auto p = split_dots(official);
    if (p.size() == 2 && p[0] == "conv1") return "quant_conv." + p[1];
    if (p.size() == 2 && p[0] == "conv2") return "post_quant_conv." + p[1];
    SURGEON_CHECK(p.size() >= 3 && (p[0] == "encoder" || p[0] == "decoder"), "VAE name '{}' has no diffusers counterpart",
                  official);
    const std::string& side = p[0];
    if (p[1] == "conv1") return side + ".conv_in." + join_from(p, 2);
    if (p[1] == "head" && p[2] == "0") return side + ".norm_out." + join_from(p, 3);
    if (p[1] == "head" && p[2] == "2") return side + ".conv_out." + join_from(p, 3);
    if (p[1] == "middle" && p.size() >= 4) return side + "." + middle_name(p[2], join_from(p, 3), official);
    if (side == "encoder" && p[1] == "downsamples" && p.size() >= 4) {
        // Flat list on both sides: Resample keeps its inner names (resample.1, time_conv).
        const auto rest = join_from(p, 3);
        const bool resample = starts_with(rest, "resample.") || starts_with(rest, "time_conv.");
        return "encoder.down_blocks." + p[2] + "." + (resample ? rest : residual_leaf(rest, official));
    }
    if (side == "decoder" && p[1] == "upsamples" && p.size() >= 4) {
        // Each stage is (num_res_blocks + 1) ResidualBlocks then one Resample (none after the last stage).
        const int64_t k = to_index(p[2], official), per_stage = c.num_res_blocks + 2;
        const int64_t stage = k / per_stage, r = k % per_stage;
        const auto rest = join_from(p, 3);
        if (r <= c.num_res_blocks) {
            return "decoder.up_blocks." + std::to_string(stage) + ".resnets." + std::to_string(r) + "." +
                   residual_leaf(rest, official);
        }
        return "decoder.up_blocks." + std::to_string(stage) + ".upsamplers.0." + rest;
    }
    fail("VAE name '{}' has no diffusers counterpart", official);
}

bool has_diffusers_vae_names(const TensorMap& weights) {
    for (const auto& [k, v] : weights) {
        if (starts_with(k, "quant_conv.") || starts_with(k, "post_quant_conv.") || starts_with(k, "decoder.conv_in.") ||
            starts_with(k, "encoder.conv_in.") || k.find(".mid_block.") != std::string::npos) {
            return true;
        }
    }
    return false;
}

TensorMap diffusers_to_official_vae(const TensorMap& weights, const WanVAE& model, const std::string& source) {
    // Build the inverse table from the official module tree of this model.
    std::map<std::string, std::string> to_official;
    for (const auto& item : model->named_parameters()) {
        to_official[official_to_diffusers_vae_name(item.key(), model->config())] = item.key();
    }
    TensorMap out;
    for (const auto& [k, v] : weights) {
        auto it = to_official.find(k);
        SURGEON_CHECK(it != to_official.end(), "unexpected tensor '{}' in {} (not a Wan2.1 VAE weight of this config)", k,
                      source);
        out[it->second] = v;
    }
    return out;
}

}  // namespace surgeon::vae
