// `surgeon encode` / `surgeon decode`: the Wan-VAE on tensor files (safetensors, keys out.latents /
// out.video) or, for decode, straight to a video file (.mp4, .gif, or a .png contact sheet).
// Every input is checked before anything runs, and outputs are written atomically, so a bad input
// gives one error line, a non-zero exit and no file.
#include <chrono>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/tensor_checks.h"
#include "core/video_io.h"
#include "vae/vae_io.h"

namespace surgeon::cli {
namespace fs = std::filesystem;

namespace {

struct VAEOptions {
    std::string vae, input, key, out, device = "cpu";
    bool normalized = false;
    int fps = 16;
};

std::string lower_ext(const std::string& path) {
    auto e = fs::path(path).extension().string();
    for (auto& ch : e) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return e;
}

// The output-path guard (core/fs.h) with the command's input file and VAE.
void check_out(const VAEOptions& o, const char* input_flag) {
    check_input_file(o.input, input_flag);
    check_output_path(o.out, {o.input}, {o.vae});
}

// The tensor named `key`, or when no key is given: the only tensor, else the first of `defaults` present.
torch::Tensor pick_tensor(const TensorMap& m, const std::string& key, const std::vector<std::string>& defaults,
                          const std::string& file) {
    if (!key.empty()) return require_tensor(m, key, file);
    if (m.size() == 1) return m.begin()->second;
    for (const auto& k : defaults) {
        if (m.count(k)) return m.at(k);
    }
    std::string names;
    for (const auto& [k, v] : m) names += (names.empty() ? "" : ", ") + k;
    fail("{} holds {} tensors ({}); name one with --key", file, m.size(), names);
}

// Tensor `name` of `file` checked (4-D or 5-D, floating point, finite) and as float32 with a batch dim; `added`:
// whether the batch dim was added. `shapes` names the accepted shapes in the error.
torch::Tensor checked_batch(const torch::Tensor& t, const std::string& name, const std::string& file, const char* shapes,
                            bool* added) {
    SURGEON_CHECK(t.dim() == 4 || t.dim() == 5, "tensor '{}' in {}: expected {}, got {}", name, file, shapes,
                  shape_str(t.sizes()));
    SURGEON_CHECK(t.is_floating_point(), "tensor '{}' in {}: expected a float tensor, got {}", name, file,
                  c10::toString(t.scalar_type()));
    check_finite(name, t);
    *added = t.dim() == 4;
    return (*added ? t.unsqueeze(0) : t).to(torch::kFloat);
}

// --vae, --key, --normalized, --out and --device of encode and decode.
void add_vae_options(CLI::App* cmd, VAEOptions& o, const char* key_help, const char* normalized_help,
                     const char* out_help) {
    cmd->add_option("--vae", o.vae,
                    "VAE folder (Wan2.1_VAE.pth / .safetensors, or a diffusers AutoencoderKLWan folder) or file")
        ->required();
    cmd->add_option("--key", o.key, key_help);
    cmd->add_flag("--normalized", o.normalized, normalized_help);
    cmd->add_option("--out", o.out, out_help)->required();
    add_device_option(cmd, o.device);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_decode(const VAEOptions& o) {
    const auto out_ext = lower_ext(o.out);
    SURGEON_CHECK(out_ext == ".safetensors" || out_ext == ".mp4" || out_ext == ".gif" || out_ext == ".png",
                  "--out '{}': unknown extension '{}' (expected .safetensors, .mp4, .gif or .png)", o.out, out_ext);
    check_out(o, "--latents");
    const auto device = parse_device(o.device);
    const auto file = load_safetensors(o.input);
    auto latents = pick_tensor(file, o.key, {"out.latents", "latents", "in.latents"}, o.input);
    const std::string name = o.key.empty() ? "latents" : o.key;
    bool added = false;
    auto z = checked_batch(latents, name, o.input, "latents [C, T, h, w] or [B, C, T, h, w]", &added);  // [B, C, T, h, w]
    SURGEON_CHECK(z.numel() > 0, "tensor '{}' in {} is empty ({})", name, o.input, shape_str(latents.sizes()));

    auto vae = vae::load_vae(o.vae, device);
    const int64_t z_dim = vae.model->config().z_dim;
    SURGEON_CHECK(z.size(1) == z_dim, "tensor '{}' in {}: has {} channels, the VAE at '{}' has z_dim {}", name, o.input,
                  z.size(1), o.vae, z_dim);
    if (o.normalized) {
        SURGEON_CHECK(vae.stats.has_value(),
                      "--normalized: the VAE at '{}' has no latent mean/std (z_dim {}; add latents_mean and "
                      "latents_std to its config.json)",
                      o.vae, z_dim);
        z = vae.stats->denormalize(z);
    }
    SURGEON_CHECK(out_ext == ".safetensors" || out_ext == ".png" || z.size(0) == 1,
                  "--out '{}': a {} file holds one video, the latents hold a batch of {}", o.out, out_ext, z.size(0));

    const auto t0 = std::chrono::steady_clock::now();
    auto video = vae::decode_latents(vae, z, /*normalized=*/false).to(torch::kCPU);  // [B, 3, T', H, W]
    const double secs = seconds_since(t0);

    if (out_ext == ".safetensors") {
        save_safetensors(o.out, {{"out.video", added ? video.squeeze(0) : video}});
    } else if (out_ext == ".png" && video.size(0) > 1) {
        std::vector<torch::Tensor> rows;
        for (int64_t b = 0; b < video.size(0); ++b) rows.push_back(video[b]);
        write_png(o.out, contact_sheet_rows(rows));
    } else {
        write_video(o.out, video[0], o.fps);
    }
    fmt::print("decoded {} -> {} in {:.2f} s -> {}\n", shape_str(latents.sizes()),
               shape_str((added ? video.squeeze(0) : video).sizes()), secs, o.out);
}

void run_encode(const VAEOptions& o) {
    SURGEON_CHECK(lower_ext(o.out) == ".safetensors", "--out '{}': encode writes latents, expected a .safetensors file",
                  o.out);
    check_out(o, "--video");
    const auto device = parse_device(o.device);
    torch::Tensor video;
    std::string name = o.key.empty() ? "video" : o.key;
    if (lower_ext(o.input) == ".safetensors") {
        const auto file = load_safetensors(o.input);
        video = pick_tensor(file, o.key, {"in.video", "video", "out.video"}, o.input);
    } else {
        SURGEON_CHECK(o.key.empty(), "--key applies to .safetensors inputs only, '{}' is a video file", o.input);
        video = read_video(o.input);  // [3, T, H, W]
    }
    bool added = false;
    auto x = checked_batch(video, name, o.input, "a video [3, T, H, W] or [B, 3, T, H, W]", &added);  // [B, 3, T, H, W]
    SURGEON_CHECK(x.size(1) == 3, "tensor '{}' in {}: expected 3 colour channels, got {} (shape {})", name, o.input,
                  x.size(1), shape_str(video.sizes()));
    const int64_t t = x.size(2), h = x.size(3), w = x.size(4);
    SURGEON_CHECK(t >= 1 && (t - 1) % 4 == 0, "{}: {} frames; the Wan-VAE encodes 1 + 4k frames (e.g. {} or {})",
                  o.input, t, t < 5 ? 1 : 1 + 4 * ((t - 1) / 4), 1 + 4 * ((t - 1) / 4 + 1));
    SURGEON_CHECK(h > 0 && w > 0 && h % 8 == 0 && w % 8 == 0, "{}: frames are {}x{} (HxW); both must be multiples of 8",
                  o.input, h, w);
    const double peak = x.abs().max().item<double>();
    SURGEON_CHECK(peak <= 1.5, "tensor '{}' in {}: values reach {:.3g}; videos must be in [-1, 1]", name, o.input, peak);

    auto vae = vae::load_vae(o.vae, device);
    SURGEON_CHECK(!o.normalized || vae.stats.has_value(),
                  "--normalized: the VAE at '{}' has no latent mean/std (add latents_mean and latents_std to its "
                  "config.json)",
                  o.vae);
    const auto t0 = std::chrono::steady_clock::now();
    auto mu = vae.model->encode(x.to(device)).mean;  // [B, Z, 1 + (T-1)/4, H/8, W/8]
    if (o.normalized) mu = vae.stats->normalize(mu);
    mu = mu.to(torch::kCPU);
    const double secs = seconds_since(t0);
    save_safetensors(o.out, {{"out.latents", added ? mu.squeeze(0) : mu}});
    fmt::print("encoded {} -> {}{} in {:.2f} s -> {}\n", shape_str(video.sizes()),
               shape_str((added ? mu.squeeze(0) : mu).sizes()), o.normalized ? " (normalized)" : "", secs, o.out);
}

}  // namespace

void register_vae_commands(CLI::App& app) {
    auto dec_opts = std::make_shared<VAEOptions>();
    auto* dec = app.add_subcommand("decode", "Decode Wan latents to a video with the Wan-VAE");
    add_vae_options(dec, *dec_opts, "tensor name in --latents (default: the only tensor, or out.latents)",
                    "the latents are normalized ((mu - mean) / std, as the DiT produces them); undo that first",
                    ".safetensors (key out.video, [3,T,H,W] clamped to [-1,1]), .mp4, .gif or .png (contact sheet)");
    dec->add_option("--latents", dec_opts->input, "safetensors file with latents [C,T,h,w] or [B,C,T,h,w]")->required();
    dec->add_option("--fps", dec_opts->fps, "frames per second of .mp4/.gif output")
        ->check(CLI::Range(1, 240))
        ->capture_default_str();
    dec->callback([dec_opts] { run_decode(*dec_opts); });

    auto enc_opts = std::make_shared<VAEOptions>();
    auto* enc = app.add_subcommand("encode", "Encode a video to Wan latents (posterior mean) with the Wan-VAE");
    add_vae_options(enc, *enc_opts, "tensor name in a safetensors --video (default: the only tensor, or in.video)",
                    "write normalized latents ((mu - mean) / std) for the DiT",
                    ".safetensors with key out.latents (the posterior mean)");
    enc->add_option("--video", enc_opts->input,
                    "video file (anything ffmpeg reads) or safetensors with [3,T,H,W] / [B,3,T,H,W] in [-1,1]; "
                    "T = 1 + 4k, H and W multiples of 8")
        ->required();
    enc->callback([enc_opts] { run_encode(*enc_opts); });
}

}  // namespace surgeon::cli
