// WanConfig parsing and validation.
#include "model/wan_config.h"

#include "core/error.h"

namespace surgeon {
using json = nlohmann::json;

namespace {
template <typename T>
void read(const json& j, const char* key, T& out, const char* where) {
    if (!j.contains(key) || j[key].is_null()) return;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)  // get<int64_t> would truncate 32.5 to 32
        SURGEON_CHECK(!j[key].is_number() || j[key].is_number_integer(),
                      "{}: config key '{}' must be an integer, got {}", where, key, j[key].dump());
    try {
        out = j[key].get<T>();
    } catch (const json::exception&) {
        fail("{}: config key '{}' has the wrong type ({})", where, key, j[key].dump());
    }
}
void read_patch(const json& j, std::array<int64_t, 3>& p, const char* where) {
    if (!j.contains("patch_size")) return;
    const auto& v = j["patch_size"];
    SURGEON_CHECK(v.is_array() && v.size() == 3, "{}: config key 'patch_size' must be 3 integers, got {}", where,
                  v.dump());
    for (int i = 0; i < 3; ++i) {
        SURGEON_CHECK(v[i].is_number_integer(), "{}: config key 'patch_size' must be 3 integers, got {}", where,
                      v.dump());
        p[i] = v[i].get<int64_t>();
    }
}

// The official config.json's fields (patch_size apart): f(key, member), for reading and writing.
template <class Config, class F>
void official_fields(Config& c, F&& f) {
    f("model_type", c.model_type);
    f("dim", c.dim);
    f("ffn_dim", c.ffn_dim);
    f("freq_dim", c.freq_dim);
    f("in_dim", c.in_dim);
    f("out_dim", c.out_dim);
    f("num_heads", c.num_heads);
    f("num_layers", c.num_layers);
    f("text_len", c.text_len);
    f("text_dim", c.text_dim);
    f("eps", c.eps);
    f("qk_norm", c.qk_norm);
    f("cross_attn_norm", c.cross_attn_norm);
}
}  // namespace

WanConfig WanConfig::from_official_json(const json& j) {
    SURGEON_CHECK(j.is_object(), "config.json: not a JSON object");
    WanConfig c;
    const char* w = "config.json";
    official_fields(c, [&](const char* key, auto& v) { read(j, key, v, w); });
    read_patch(j, c.patch_size, w);
    if (j.contains("window_size")) {
        const auto& ws = j["window_size"];
        SURGEON_CHECK(ws.is_array() && ws.size() == 2 && ws[0] == -1 && ws[1] == -1,
                      "config.json: only global attention (window_size [-1,-1]) is supported, got {}", ws.dump());
    }
    c.validate();
    return c;
}

WanConfig WanConfig::from_diffusers_json(const json& j) {
    SURGEON_CHECK(j.is_object(), "config.json: not a JSON object");
    WanConfig c;
    const char* w = "transformer/config.json";
    int64_t heads = c.num_heads, head_dim = c.head_dim();
    read(j, "num_attention_heads", heads, w);
    read(j, "attention_head_dim", head_dim, w);
    c.num_heads = heads;
    c.dim = heads * head_dim;
    read(j, "in_channels", c.in_dim, w);
    read(j, "out_channels", c.out_dim, w);
    read(j, "text_dim", c.text_dim, w);
    read(j, "freq_dim", c.freq_dim, w);
    read(j, "ffn_dim", c.ffn_dim, w);
    read(j, "num_layers", c.num_layers, w);
    read(j, "cross_attn_norm", c.cross_attn_norm, w);
    read(j, "eps", c.eps, w);
    read_patch(j, c.patch_size, w);
    c.pad_context = false;
    if (j.contains("qk_norm")) {
        const auto& q = j["qk_norm"];
        SURGEON_CHECK(q.is_string() && q.get<std::string>() == "rms_norm_across_heads",
                      "{}: only qk_norm 'rms_norm_across_heads' is supported, got {}", w, q.dump());
        c.qk_norm = true;
    }
    for (const char* k : {"image_dim", "added_kv_proj_dim"})
        SURGEON_CHECK(!j.contains(k) || j[k].is_null(), "{}: '{}' is set: image-to-video models are not supported",
                      w, k);
    c.validate();
    return c;
}

json WanConfig::to_json() const {
    json j{{"_class_name", "WanModel"}, {"patch_size", patch_size}};
    official_fields(*this, [&](const char* key, const auto& v) { j[key] = v; });
    return j;
}

void WanConfig::validate() const {
    SURGEON_CHECK(model_type == "t2v", "config: model_type '{}' is not supported (only 't2v')", model_type);
    auto pos = [](const char* k, int64_t v) { SURGEON_CHECK(v > 0, "config: '{}' must be positive, got {}", k, v); };
    pos("dim", dim);
    pos("ffn_dim", ffn_dim);
    pos("freq_dim", freq_dim);
    pos("in_dim", in_dim);
    pos("out_dim", out_dim);
    pos("num_heads", num_heads);
    pos("text_len", text_len);
    pos("text_dim", text_dim);
    SURGEON_CHECK(num_layers >= 0, "config: 'num_layers' must be >= 0, got {}", num_layers);
    SURGEON_CHECK(dim <= (1 << 16) && ffn_dim <= (1 << 18) && num_layers <= 1024 && text_len <= (1 << 16),
                  "config: absurd sizes (dim {}, ffn_dim {}, num_layers {}, text_len {})", dim, ffn_dim, num_layers,
                  text_len);
    SURGEON_CHECK(freq_dim <= (1 << 16) && in_dim <= (1 << 16) && out_dim <= (1 << 16) && text_dim <= (1 << 16),
                  "config: absurd sizes (freq_dim {}, in_dim {}, out_dim {}, text_dim {})", freq_dim, in_dim, out_dim,
                  text_dim);
    for (int i = 0; i < 3; ++i)
        SURGEON_CHECK(patch_size[i] > 0 && patch_size[i] <= 64, "config: patch_size[{}] must be in 1..64, got {}", i,
                      patch_size[i]);
    SURGEON_CHECK(freq_dim % 2 == 0, "config: 'freq_dim' must be even, got {}", freq_dim);
    SURGEON_CHECK(dim % num_heads == 0, "config: dim {} is not divisible by num_heads {}", dim, num_heads);
    const int64_t d = head_dim();
    SURGEON_CHECK(d % 2 == 0 && d >= 6, "config: head dim {} must be even and >= 6 for the 3-D RoPE", d);
    SURGEON_CHECK(eps > 0 && eps < 1, "config: eps must be in (0, 1), got {}", eps);
    SURGEON_CHECK(qk_norm && cross_attn_norm, "config: only qk_norm=true and cross_attn_norm=true are supported");
}

int64_t WanConfig::num_parameters() const {
    const int64_t C = dim, F = ffn_dim, P = patch_volume();
    const int64_t block = 8 * C * C + 2 * C * F + 21 * C + F;
    const int64_t non_block = in_dim * P * C + C                // patch embedding
                              + text_dim * C + C + C * C + C    // text embedding
                              + freq_dim * C + C + C * C + C    // time embedding
                              + 6 * C * C + 6 * C               // time projection
                              + 2 * C + out_dim * P * C + out_dim * P;  // head
    return non_block + num_layers * block;
}

WanConfig wan_preset(const std::string& name) {
    WanConfig c;
    if (name == "wan2.1-t2v-1.3b") return c;
    if (name == "wan2.1-t2v-14b") {
        c.dim = 5120;
        c.ffn_dim = 13824;
        c.num_heads = 40;
        c.num_layers = 40;
        return c;
    }
    fail("unknown model preset '{}' (known: wan2.1-t2v-1.3b, wan2.1-t2v-14b)", name);
}

TokenGrid token_grid(const WanConfig& cfg, int64_t frames, int64_t height, int64_t width) {
    const auto& p = cfg.patch_size;
    return {frames / p[0], height / p[1], width / p[2]};
}

}  // namespace surgeon
