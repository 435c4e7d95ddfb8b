// generate_wan_t2v: umT5 -> DiT sampling -> Wan-VAE decode on an official or diffusers Wan2.1 folder.
#include "pipelines/wan_t2v.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "surgery/student_checkpoint.h"
#include "text/text_encode.h"
#include "vae/vae_io.h"

namespace surgeon {
namespace fs = std::filesystem;

namespace {

struct Stage {
    bool on;
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    void done(const char* what) {
        if (!on) return;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "[wan] %s (%.1f s)\n", what, s);
        t0 = std::chrono::steady_clock::now();
    }
};

// The folder's own VAE: diffusers vae/, or the official Wan2.1_VAE.pth with the published config (the
// config.json beside it is the DiT's).
vae::LoadedVAE load_folder_vae(const std::string& dir, const std::string& override_path, torch::Device device) {
    if (!override_path.empty()) return vae::load_vae(override_path, device);
    const fs::path root(dir);
    if (fs::is_directory(root / "vae")) return vae::load_vae((root / "vae").string(), device);
    const auto pth = root / "Wan2.1_VAE.pth";
    SURGEON_CHECK(fs::is_regular_file(pth), "{}: no VAE (expected Wan2.1_VAE.pth or vae/; or give --vae)", dir);
    vae::LoadedVAE out;
    out.weights_path = pth.string();
    out.model = vae::WanVAE(vae::WanVAEConfig{});
    vae::load_vae_weights(out.model, vae::read_torch_checkpoint(out.weights_path), out.weights_path);
    out.stats = vae::LatentStats::wan21();
    out.model->to(device);
    out.model->eval();
    return out;
}

// Prompt and negative prompt -> context rows [1, N, text_dim] each (the encoder is freed afterwards).
std::pair<torch::Tensor, torch::Tensor> encode_texts(const std::string& dir, const WanT2VRequest& r) {
    const auto dtype = r.precision == Precision::Float32 ? torch::kFloat32 : torch::kBFloat16;
    auto te = text::load_text_encoder(dir, r.device, dtype);
    const std::string neg = r.negative_prompt.empty() ? std::string(text::kWanNegativePrompt) : r.negative_prompt;
    auto enc = text::encode_prompts(te, {r.prompt, neg}, te.folder.text_len);
    return {enc.context.narrow(0, 0, 1), enc.context.narrow(0, 1, 1)};
}

}  // namespace

bool is_wan_t2v_folder(const std::string& dir) {
    return fs::is_directory(dir) && text::has_text_encoder(dir) &&
           (fs::is_regular_file(fs::path(dir) / "config.json") ||
            fs::is_regular_file(fs::path(dir) / "transformer" / "config.json"));
}

torch::Tensor generate_wan_t2v(const std::string& dir, const WanT2VRequest& r) {
    SURGEON_CHECK(!r.prompt.empty(), "--prompt is required for a Wan2.1 folder");
    SURGEON_CHECK(r.frames >= 1 && r.frames % 4 == 1 && r.height > 0 && r.width > 0 && r.height % 16 == 0 &&
                      r.width % 16 == 0,
                  "--frames must be 4n+1 and --height/--width positive multiples of 16, got {}x{}x{}", r.frames,
                  r.height, r.width);
    Stage stage{r.progress};
    auto [ctx, neg] = encode_texts(dir, r);
    stage.done("umT5: prompt and negative prompt encoded");
    auto model = load_model_or_student(dir, r.plan, r.seed, r.device, r.precision).loaded.model;
    model->set_attention_impl(r.attention_impl);
    model->eval();
    const auto& cfg = model->config();
    SURGEON_CHECK(ctx.size(2) == cfg.text_dim, "{}: the text encoder's width {} does not match the DiT's text_dim {}",
                  dir, ctx.size(2), cfg.text_dim);
    auto vae = load_folder_vae(dir, r.vae, r.device);
    SURGEON_CHECK(vae.stats.has_value(), "{}: the VAE has no latent mean/std", vae.weights_path);
    SURGEON_CHECK(vae.model->config().z_dim == cfg.out_dim, "{}: the VAE's z_dim {} does not match the DiT's out_dim {}",
                  vae.weights_path, vae.model->config().z_dim, cfg.out_dim);
    stage.done("DiT and VAE loaded");
    auto gen = at::make_generator<at::CPUGeneratorImpl>(r.seed);
    const auto lat = vae_latent_size(r.frames, r.height, r.width);
    auto noise = at::randn({1, cfg.out_dim, lat[0], lat[1], lat[2]}, gen);
    auto z = sample_video(model, noise, ctx, neg, r.sampling, nullptr, {},
                          [&](int64_t) { return at::randn(noise.sizes(), gen); });
    stage.done("sampled");
    torch::NoGradGuard ng;
    auto video = vae.model->decode(vae.stats->denormalize(z.to(r.device).to(torch::kFloat))).clamp(-1, 1);
    stage.done("VAE decoded");
    return video[0].to(torch::kCPU, torch::kFloat);
}

}  // namespace surgeon
