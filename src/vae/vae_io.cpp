// Wan-VAE file formats and strict loading. The .pth reader uses caffe2::serialize::PyTorchStreamReader
// (the zip container of torch.save) and torch::jit::readArchiveAndTensors (the pickle with
// _rebuild_tensor_v2 / FloatStorage globals), which is what torch::pickle_load does, without reading the
// whole file into memory first.
#include "vae/vae_io.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/tensor_checks.h"
#include "vae/pth_checks.h"
#include "vae/vae_names.h"

namespace surgeon::vae {
namespace fs = std::filesystem;

namespace {

std::string first_line(std::string s) {
    const auto nl = s.find('\n');
    if (nl != std::string::npos) s.resize(nl);
    return s;
}

// Dict[str, Tensor] -> TensorMap; also unwraps {"state_dict": {...}} and {"model": {...}}.
TensorMap tensors_from_ivalue(const c10::IValue& root, const std::string& path) {
    SURGEON_CHECK(root.isGenericDict(), "{}: the checkpoint does not hold a state dict (top-level pickle object is {})",
                  path, root.tagKind());
    auto dict = root.toGenericDict();
    for (const char* wrapper : {"state_dict", "model"}) {
        if (dict.size() >= 1 && dict.contains(c10::IValue(std::string(wrapper))) &&
            dict.at(c10::IValue(std::string(wrapper))).isGenericDict()) {
            dict = dict.at(c10::IValue(std::string(wrapper))).toGenericDict();
            break;
        }
    }
    TensorMap out;
    for (const auto& item : dict) {
        SURGEON_CHECK(item.key().isString(), "{}: state dict key of type {} (expected strings)", path,
                      item.key().tagKind());
        const auto name = item.key().toStringRef();
        SURGEON_CHECK(item.value().isTensor(), "{}: entry '{}' is a {}, not a tensor", path, name,
                      item.value().tagKind());
        out[name] = item.value().toTensor();
        check_tensor_in_storage(out[name], fmt::format("{}: tensor '{}'", path, name));  // before any read
    }
    SURGEON_CHECK(!out.empty(), "{}: the checkpoint's state dict is empty", path);
    return out;
}

bool is_zip(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {0, 0, 0, 0};
    in.read(magic, 4);
    return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

std::string ext_of(const std::string& path) {
    auto e = fs::path(path).extension().string();
    for (auto& ch : e) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return e;
}

TensorMap read_weights_file(const std::string& path) {
    const auto e = ext_of(path);
    if (e == ".pth" || e == ".pt" || e == ".ckpt" || e == ".bin") return read_torch_checkpoint(path);
    if (e == ".json") return load_sharded_safetensors(path);
    SURGEON_CHECK(e == ".safetensors", "{}: unknown VAE weights format (expected .pth or .safetensors)", path);
    return load_safetensors(path);
}

std::optional<nlohmann::json> read_json_if_exists(const fs::path& p) {
    if (!fs::is_regular_file(p)) return std::nullopt;
    try {
        return nlohmann::json::parse(read_text_file(p.string()));
    } catch (const nlohmann::json::exception& e) {
        fail("{}: invalid JSON ({})", p.string(), first_line(e.what()));
    }
}

std::optional<LatentStats> stats_from_json(const nlohmann::json& j, int64_t z_dim, const std::string& source) {
    if (!j.contains("latents_mean") || !j.contains("latents_std")) return std::nullopt;
    std::vector<float> mean, std;
    try {
        mean = j.at("latents_mean").get<std::vector<float>>();
        std = j.at("latents_std").get<std::vector<float>>();
    } catch (const nlohmann::json::exception& e) {
        fail("{}: latents_mean/latents_std must be lists of numbers ({})", source, first_line(e.what()));
    }
    SURGEON_CHECK(static_cast<int64_t>(mean.size()) == z_dim && static_cast<int64_t>(std.size()) == z_dim,
                  "{}: latents_mean/latents_std have {}/{} entries, expected z_dim = {}", source, mean.size(), std.size(),
                  z_dim);
    for (float s : std) SURGEON_CHECK(s > 0, "{}: latents_std entries must be positive, got {}", source, s);
    return LatentStats{torch::tensor(mean), torch::tensor(std)};
}

}  // namespace

TensorMap read_torch_checkpoint(const std::string& path) {
    SURGEON_CHECK(fs::is_regular_file(path), "VAE checkpoint '{}' does not exist", path);
    SURGEON_CHECK(is_zip(path),
                  "{}: not a zip-format torch checkpoint (truncated, or saved with the legacy torch.save format; "
                  "re-save it with torch.save or convert it to safetensors)",
                  path);
    check_input_file(path, "torch checkpoint");
    check_zip_records(path);
    c10::IValue root;
    try {
        caffe2::serialize::PyTorchStreamReader reader(path);
        SURGEON_CHECK(reader.hasRecord("data.pkl"), "{}: no data.pkl record (not a torch.save checkpoint)", path);
        const auto [pickle, pickle_size] = reader.getRecord("data.pkl");
        check_pickle_structure(static_cast<const uint8_t*>(pickle.get()), pickle_size, path + ": data.pkl");
        root = torch::jit::readArchiveAndTensors("data", /*pickle_prefix=*/"", /*tensor_prefix=*/"",
                                                 /*type_resolver=*/std::nullopt, /*obj_loader=*/std::nullopt,
                                                 /*device=*/torch::Device(torch::kCPU), reader);
    } catch (const Error&) {
        throw;
    } catch (const c10::Error& e) {
        fail("{}: cannot read the torch checkpoint (truncated or malformed): {}", path,
             first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {
        fail("{}: cannot read the torch checkpoint (truncated or malformed): {}", path, first_line(e.what()));
    }
    return tensors_from_ivalue(root, path);
}

void load_vae_weights(WanVAE& model, const TensorMap& weights, const std::string& source) {
    auto params = model->named_parameters(/*recurse=*/true);
    // Check everything first so that a failure leaves the model untouched.
    for (const auto& item : params) {
        const auto& name = item.key();
        const auto& p = item.value();
        auto it = weights.find(name);
        SURGEON_CHECK(it != weights.end(), "{}: missing tensor '{}' (expected shape {})", source, name,
                      shape_str(p.sizes()));
        const auto& w = it->second;
        SURGEON_CHECK(w.sizes() == p.sizes(), "{}: tensor '{}' has shape {}, expected {}", source, name,
                      shape_str(w.sizes()), shape_str(p.sizes()));
        SURGEON_CHECK(w.is_floating_point(), "{}: tensor '{}' has dtype {}, expected a float type", source, name,
                      c10::toString(w.scalar_type()));
        SURGEON_CHECK(torch::isfinite(w).all().item<bool>(), "{}: tensor '{}' holds NaN or Inf", source, name);
    }
    for (const auto& [name, w] : weights) {
        SURGEON_CHECK(params.contains(name), "{}: unexpected tensor '{}' (shape {}) is not a parameter of this VAE",
                      source, name, shape_str(w.sizes()));
    }
    torch::NoGradGuard no_grad;
    for (auto& item : params) item.value().copy_(weights.at(item.key()).to(item.value().scalar_type()));
}

LoadedVAE load_vae(const std::string& path_in, torch::Device device) {
    SURGEON_CHECK(fs::exists(path_in), "VAE path '{}' does not exist", path_in);
    fs::path dir = path_in, weights_path;
    if (fs::is_regular_file(path_in)) {
        dir = fs::path(path_in).parent_path();
        weights_path = path_in;
    } else {
        if (!fs::exists(dir / "config.json") && fs::is_regular_file(dir / "vae" / "config.json")) dir = dir / "vae";
        for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                                 "Wan2.1_VAE.safetensors", "Wan2.1_VAE.pth"}) {
            if (fs::is_regular_file(dir / name)) {
                weights_path = dir / name;
                break;
            }
        }
        if (weights_path.empty()) {
            std::vector<fs::path> found;
            for (const auto& entry : fs::directory_iterator(dir)) {
                const auto e = ext_of(entry.path().string());
                if (entry.is_regular_file() && (e == ".safetensors" || e == ".pth")) found.push_back(entry.path());
            }
            SURGEON_CHECK(found.size() == 1,
                          "{}: {} (expected Wan2.1_VAE.pth, Wan2.1_VAE.safetensors or a diffusers AutoencoderKLWan "
                          "folder)",
                          dir.string(), found.empty() ? "no VAE weights found" : "several weight files, name one");
            weights_path = found[0];
        }
    }
    const auto config_json = read_json_if_exists(dir / "config.json");
    if (config_json && config_json->contains("_class_name")) {
        const auto cls = config_json->at("_class_name").dump();
        SURGEON_CHECK(cls == "\"AutoencoderKLWan\"", "{}: _class_name is {}, expected AutoencoderKLWan",
                      (dir / "config.json").string(), cls);
    }
    const std::string config_source = config_json ? (dir / "config.json").string() : "the published Wan2.1 VAE config";
    const WanVAEConfig config = config_json ? vae_config_from_json(*config_json, config_source) : WanVAEConfig{};

    LoadedVAE out;
    out.weights_path = weights_path.string();
    TensorMap weights = read_weights_file(out.weights_path);
    out.model = WanVAE(config);
    if (has_diffusers_vae_names(weights)) {
        weights = diffusers_to_official_vae(weights, out.model, out.weights_path);
        out.diffusers_names = true;
    }
    try {
        load_vae_weights(out.model, weights, out.weights_path);
    } catch (const Error& e) {
        if (config_json) throw;
        fail("{} (no config.json beside it, so the published Wan2.1 VAE config was assumed)", e.what());
    }
    out.model->eval();
    out.model->to(device);
    if (config_json) out.stats = stats_from_json(*config_json, config.z_dim, config_source);
    if (!out.stats && config.z_dim == 16) out.stats = LatentStats::wan21();
    return out;
}

torch::Tensor decode_latents(LoadedVAE& vae, const torch::Tensor& latents, bool normalized) {
    const auto device = vae.model->parameters().front().device();
    auto z = latents.to(device, torch::kFloat);  // [B, Z, T, h, w]
    if (normalized) {
        SURGEON_CHECK(vae.stats.has_value(),
                      "normalized latents given, but the VAE ({}) has no latent mean/std (z_dim {}; add latents_mean "
                      "and latents_std to its config.json)",
                      vae.weights_path, vae.model->config().z_dim);
        z = vae.stats->denormalize(z);
    }
    return vae.model->decode(z).clamp(-1, 1);  // [B, 3, 1 + 4(T-1), 8h, 8w]
}

}  // namespace surgeon::vae
