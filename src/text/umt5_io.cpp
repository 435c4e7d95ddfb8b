// Text-encoder folder detection and strict loading (official .pth and transformers safetensors).
#include "text/umt5_io.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/tensor_checks.h"
#include "model/model_io.h"
#include "text/umt5_names.h"
#include "vae/vae_io.h"

namespace surgeon::text {
namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const std::string& path) {
    try {
        return nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception& e) {
        std::string msg = e.what();
        fail("{}: invalid JSON ({})", path, msg.substr(0, msg.find('\n')));
    }
}

std::string first_existing(const std::vector<fs::path>& candidates) {
    for (const auto& p : candidates)
        if (fs::is_regular_file(p)) return p.string();
    return {};
}

// The official name -> the transformers name used in messages (the tied embedding as "shared.weight").
std::string hf_name_of(const std::string& official) {
    if (official == "token_embedding.weight") return "shared.weight";
    if (official == "norm.weight") return "encoder.final_layer_norm.weight";
    static const std::map<std::string, std::string> table = {
        {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
        {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
        {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
        {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
        {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
        {"norm1.weight", "layer.0.layer_norm.weight"},
        {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},
        {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},
        {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"},
        {"norm2.weight", "layer.1.layer_norm.weight"}};
    const auto dot = official.find('.', 7);
    if (official.rfind("blocks.", 0) == 0 && dot != std::string::npos) {
        auto it = table.find(official.substr(dot + 1));
        if (it != table.end()) return "encoder.block." + official.substr(7, dot - 7) + "." + it->second;
    }
    return official;
}

int64_t dit_text_len(const fs::path& root) {
    const auto cfg = root / "config.json";
    if (!fs::is_regular_file(cfg)) return 512;
    const auto j = read_json(cfg.string());
    if (j.is_object() && j.contains("text_len") && j.at("text_len").is_number_integer())
        return j.at("text_len").get<int64_t>();
    return 512;
}

}  // namespace

TextEncoderFolder find_text_encoder_folder(const std::string& dir) {
    SURGEON_CHECK(fs::is_directory(dir), "model folder '{}' does not exist", dir);
    const fs::path root(dir);
    TextEncoderFolder f;
    f.root = dir;
    const auto te = root / "text_encoder";
    if (fs::is_regular_file(te / "config.json")) {
        f.config_path = (te / "config.json").string();
        f.weights_path = first_existing({te / "model.safetensors", te / "model.safetensors.index.json"});
        SURGEON_CHECK(!f.weights_path.empty(), "{}: no model.safetensors or model.safetensors.index.json",
                      te.string());
    } else if (fs::is_regular_file(root / kOfficialT5Checkpoint)) {
        f.weights_path = (root / kOfficialT5Checkpoint).string();
        f.official_names = true;
        f.text_len = dit_text_len(root);
    } else {
        fail("{}: no text encoder (expected {} of an official Wan folder, or text_encoder/config.json of a "
             "diffusers folder)", dir, kOfficialT5Checkpoint);
    }
    f.tokenizer_path = first_existing({root / "google" / "umt5-xxl" / "spiece.model", root / "tokenizer" / "spiece.model"});
    SURGEON_CHECK(!f.tokenizer_path.empty(), "{}: no tokenizer (expected google/umt5-xxl/spiece.model or "
                  "tokenizer/spiece.model)", dir);
    return f;
}

bool has_text_encoder(const std::string& dir) {
    const fs::path root(dir);
    return fs::is_regular_file(root / "text_encoder" / "config.json") ||
           fs::is_regular_file(root / kOfficialT5Checkpoint);
}

void load_umt5_weights(UMT5Encoder& model, const TensorMap& tensors, bool hf_names, const std::string& source) {
    const auto expected = state_dict(*model);
    auto show = [&](const std::string& n) { return hf_names ? hf_name_of(n) : n; };
    for (const auto& [name, t] : tensors)
        SURGEON_CHECK(expected.count(name), "{}: unexpected tensor '{}' (shape {}) not in the umT5 encoder", source,
                      show(name), shape_str(t.sizes()));
    for (const auto& [name, p] : expected)
        SURGEON_CHECK(tensors.count(name), "{}: missing tensor '{}' (expected shape {})", source, show(name),
                      shape_str(p.sizes()));
    for (const auto& [name, t] : tensors)
        SURGEON_CHECK(t.sizes() == expected.at(name).sizes(), "{}: tensor '{}' has wrong shape: expected {}, got {}",
                      source, show(name), shape_str(expected.at(name).sizes()), shape_str(t.sizes()));
    load_state_dict_strict(*model, tensors, {}, source);  // dtypes, then the copy
}

LoadedTextEncoder load_text_encoder(const std::string& dir, torch::Device device, torch::ScalarType dtype) {
    SURGEON_CHECK(dtype == torch::kFloat32 || dtype == torch::kBFloat16,
                  "umT5 encoder: dtype must be float32 or bfloat16, got {}", c10::toString(dtype));
    auto folder = find_text_encoder_folder(dir);
    UMT5Tokenizer tokenizer(folder.tokenizer_path);
    TensorMap tensors;
    UMT5Config cfg;
    if (folder.official_names) {
        tensors = vae::read_torch_checkpoint(folder.weights_path);
        cfg = UMT5Config::infer_from_official(tensors, folder.weights_path);
    } else {
        cfg = UMT5Config::from_hf_json(read_json(folder.config_path), folder.config_path);
        const bool index = folder.weights_path.size() > 5 &&
                           folder.weights_path.substr(folder.weights_path.size() - 5) == ".json";
        tensors = umt5_from_hf_names(index ? load_sharded_safetensors(folder.weights_path)
                                           : load_safetensors(folder.weights_path),
                                     folder.weights_path);
    }
    SURGEON_CHECK(tokenizer.vocab_size() <= cfg.vocab_size,
                  "{}: the tokenizer has {} pieces but the encoder's vocabulary only {} rows", tokenizer.path(),
                  tokenizer.vocab_size(), cfg.vocab_size);
    UMT5Encoder model(cfg);
    model->to(dtype);
    load_umt5_weights(model, tensors, !folder.official_names, folder.weights_path);
    tensors.clear();
    model->to(device);
    model->eval();
    return {model, std::move(tokenizer), folder};
}

}  // namespace surgeon::text
