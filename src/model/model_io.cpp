// Model folder detection, strict state-dict loading and saving.
#include "model/model_io.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/json_limits.h"
#include "core/fs.h"
#include "core/tensor_checks.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
const char* kWeights = "diffusion_pytorch_model.safetensors";
const char* kIndex = "diffusion_pytorch_model.safetensors.index.json";

json read_json(const std::string& path) {
    return parse_json_bounded(read_text_file(path), path);
}

bool is_diffusers_config(const json& j) {
    return j.is_object() && (j.value("_class_name", "") == "WanTransformer3DModel" ||
                             j.contains("num_attention_heads"));
}
}  // namespace

ModelFolder find_model_folder(const std::string& path) {
    SURGEON_CHECK(fs::exists(path), "{}: model folder does not exist", path);
    SURGEON_CHECK(fs::is_directory(path), "{}: expected a model folder (config.json + safetensors)", path);
    ModelFolder f;
    f.root = path;
    fs::path dir(path);
    if (!fs::exists(dir / "config.json") && fs::exists(dir / "transformer" / "config.json")) dir /= "transformer";
    SURGEON_CHECK(fs::exists(dir / "config.json"), "{}: no config.json (nor transformer/config.json)", path);
    f.config_path = (dir / "config.json").string();
    f.naming = is_diffusers_config(read_json(f.config_path)) ? WeightNaming::Diffusers : WeightNaming::Official;
    if (fs::exists(dir / kIndex)) {
        f.weights_path = (dir / kIndex).string();
        f.sharded = true;
    } else if (fs::exists(dir / kWeights)) {
        f.weights_path = (dir / kWeights).string();
    } else {
        fail("{}: no {} or {}", dir.string(), kWeights, kIndex);
    }
    return f;
}

WanConfig read_model_config(const ModelFolder& folder) {
    auto j = read_json(folder.config_path);
    try {
        return folder.naming == WeightNaming::Diffusers ? WanConfig::from_diffusers_json(j)
                                                        : WanConfig::from_official_json(j);
    } catch (const Error& e) {
        fail("{}: {}", folder.config_path, e.what());
    }
}

TensorMap read_model_tensors(const ModelFolder& folder, Metadata* metadata) {
    TensorMap raw = folder.sharded ? load_sharded_safetensors(folder.weights_path, metadata)
                                   : load_safetensors(folder.weights_path, metadata);
    return to_official_names(raw, folder.naming);
}

TensorMap state_dict(const torch::nn::Module& module) {
    TensorMap out;
    for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value();
    for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value();
    return out;
}

void load_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors, const StrictLoadOptions& options,
                            const std::string& source) {
    auto expected = state_dict(module);
    auto allowed_missing = [&](const std::string& name) {
        for (const auto& p : options.allow_missing_prefixes)
            if (name.rfind(p, 0) == 0) return true;
        return false;
    };
    // Unexpected first (usually the most telling), then missing, shapes and dtypes.
    for (const auto& [name, t] : tensors)
        SURGEON_CHECK(expected.count(name), "{}: unexpected tensor '{}' (shape {}) not in the model", source, name,
                      shape_str(t.sizes()));
    for (const auto& [name, p] : expected)
        SURGEON_CHECK(tensors.count(name) || allowed_missing(name), "{}: missing tensor '{}' (expected shape {})",
                      source, name, shape_str(p.sizes()));
    std::optional<torch::ScalarType> ckpt_dtype;
    for (const auto& [name, t] : tensors) {
        const auto& p = expected.at(name);
        SURGEON_CHECK(t.sizes() == p.sizes(), "{}: tensor '{}' has wrong shape: expected {}, got {}", source, name,
                      shape_str(p.sizes()), shape_str(t.sizes()));
        const auto dt = t.scalar_type();
        SURGEON_CHECK(dt == torch::kFloat32 || dt == torch::kBFloat16 || dt == torch::kFloat16,
                      "{}: tensor '{}' has wrong dtype: expected F32, BF16 or F16, got {}", source, name,
                      dtype_to_safetensors(dt));
        if (!ckpt_dtype) ckpt_dtype = dt;
        SURGEON_CHECK(dt == *ckpt_dtype, "{}: tensor '{}' has wrong dtype: expected {} like the rest of the checkpoint, got {}",
                      source, name, dtype_to_safetensors(*ckpt_dtype), dtype_to_safetensors(dt));
        SURGEON_CHECK(torch::isfinite(t).all().item<bool>(), "{}: tensor '{}' holds NaN or Inf", source, name);
    }
    torch::NoGradGuard ng;
    for (const auto& [name, t] : tensors) {
        auto& p = expected.at(name);
        p.copy_(t.to(p.device(), p.scalar_type()));
    }
}

LoadedModel load_wan_model(const std::string& path, torch::Device device, Precision precision) {
    LoadedModel out;
    out.folder = find_model_folder(path);
    const WanConfig cfg = read_model_config(out.folder);
    auto tensors = read_model_tensors(out.folder, &out.metadata);
    if (!tensors.empty()) out.checkpoint_dtype = tensors.begin()->second.scalar_type();
    out.model = WanModel(cfg);
    load_state_dict_strict(*out.model, tensors, {}, out.folder.weights_path);
    out.model->to(device);
    out.model->set_precision(precision);
    return out;
}

void save_wan_model(const WanModel& model, const std::string& dir, torch::ScalarType dtype, uint64_t max_shard_bytes,
                    const Metadata& metadata) {
    fs::create_directories(dir);
    TensorMap tensors;
    for (const auto& [name, t] : state_dict(*model)) tensors[name] = t.detach().to(torch::kCPU, dtype).contiguous();
    uint64_t total = 0;
    for (const auto& [n, t] : tensors) total += t.numel() * t.element_size();
    if (max_shard_bytes > 0 && total > max_shard_bytes) {
        save_sharded_safetensors(dir, "diffusion_pytorch_model", tensors, max_shard_bytes, metadata);
    } else {
        save_safetensors((fs::path(dir) / kWeights).string(), tensors, metadata);
    }
    atomic_write((fs::path(dir) / "config.json").string(),
                 [&](std::ostream& o) { o << model->config().to_json().dump(1) << "\n"; });
}

}  // namespace surgeon
