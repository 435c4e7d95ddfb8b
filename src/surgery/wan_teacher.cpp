// The surgery's Wan2.1 teacher: umT5 contexts, recorded trajectories, stage-3 latents, held-out samples.
#include "surgery/wan_teacher.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/video_io.h"
#include "model/model_io.h"
#include "pipelines/wan_t2v.h"
#include "surgery/attention_swap.h"
#include "surgery/student.h"
#include "text/text_encode.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<std::string> read_prompts_file(const std::string& path) {
    SURGEON_CHECK(fs::is_regular_file(path), "--prompts {}: no such file", path);
    std::ifstream in(path);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        const auto a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
        if (a != std::string::npos) out.push_back(line.substr(a, b - a + 1));
    }
    SURGEON_CHECK(!out.empty(), "--prompts {}: no prompt in the file (one per line)", path);
    return out;
}

namespace {

// Training videos of --videos: every file ffmpeg reads, in name order.
std::vector<std::string> video_files(const std::string& dir) {
    SURGEON_CHECK(fs::is_directory(dir), "--videos {}: not a folder", dir);
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

// A video [3, T, H, W] cut to `frames` and resized to height x width (bilinear per frame).
torch::Tensor fit_video(const torch::Tensor& v, int64_t frames, int64_t height, int64_t width, const std::string& src) {
    SURGEON_CHECK(v.size(1) >= frames, "--videos: {} has {} frames, the surgery needs {}", src, v.size(1), frames);
    auto x = v.narrow(1, 0, frames).permute({1, 0, 2, 3});  // [T, 3, H, W]
    if (x.size(2) != height || x.size(3) != width)
        x = torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{height, width})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(false));
    return x.permute({1, 0, 2, 3}).contiguous();  // [3, T, H, W]
}

}  // namespace

WanTeacher::WanTeacher(const WanTeacherSpec& s, const std::string& work) : spec_(s), work_(work) {
    SURGEON_CHECK(is_wan_t2v_folder(s.folder), "{}: not a Wan2.1 folder with a text encoder", s.folder);
    SURGEON_CHECK(s.frames >= 1 && s.frames % 4 == 1 && s.height > 0 && s.width > 0 && s.height % 16 == 0 &&
                      s.width % 16 == 0,
                  "--frames must be 4n+1 and --height/--width positive multiples of 16, got {}x{}x{}", s.frames,
                  s.height, s.width);
    SURGEON_CHECK(s.heldout >= 1 && static_cast<int64_t>(s.prompts.size()) > s.heldout,
                  "--prompts: need more than the {} held-out prompt(s), got {}", s.heldout, s.prompts.size());
    if (!s.videos.empty())
        SURGEON_CHECK(static_cast<int64_t>(video_files(s.videos).size()) == training_prompts(),
                      "--videos {}: {} videos for {} training prompts (the last {} prompt(s) are held out)", s.videos,
                      video_files(s.videos).size(), training_prompts(), s.heldout);
    cfg_ = read_model_config(find_model_folder(s.folder));
    fs::create_directories(work_);
    const std::string cache = work_ + "/contexts.safetensors";
    if (file_exists(cache)) {
        contexts_ = load_safetensors(cache).at("contexts");
    } else {
        auto te = text::load_text_encoder(s.folder, s.device,
                                          s.precision == Precision::Float32 ? torch::kFloat32 : torch::kBFloat16);
        auto all = s.prompts;
        all.push_back(text::kWanNegativePrompt);
        contexts_ = text::encode_prompts(te, all, te.folder.text_len).context.to(torch::kCPU, torch::kFloat32);
        save_safetensors(cache, {{"contexts", contexts_.contiguous()}});  // atomic
    }
    SURGEON_CHECK(contexts_.size(0) == static_cast<int64_t>(s.prompts.size()) + 1 && contexts_.size(2) == cfg_.text_dim,
                  "{}: contexts [{}, {}] do not match {} prompts and the DiT's text_dim {} (delete it to re-encode)",
                  cache, contexts_.size(0), contexts_.size(2), s.prompts.size() + 1, cfg_.text_dim);
}

TokenGrid WanTeacher::grid() const { return token_grid_for_video(cfg_, spec_.frames, spec_.height, spec_.width); }

json WanTeacher::settings() const {
    return {{"prompts", spec_.prompts}, {"heldout", spec_.heldout}, {"videos", spec_.videos},
            {"frames", spec_.frames}, {"height", spec_.height}, {"width", spec_.width},
            {"sampling", {{"solver", to_string(spec_.sampling.solver)}, {"steps", spec_.sampling.steps},
                          {"shift", spec_.sampling.shift}, {"guidance", spec_.sampling.guidance}}},
            {"seed", spec_.seed}};
}

WanModel& WanTeacher::teacher_dit() {
    if (!dit_) {
        dit_ = load_wan_student(spec_.folder, StudentSpec{}, spec_.device, spec_.precision).loaded.model;
        dit_->eval();
    }
    return dit_;
}

vae::LoadedVAE& WanTeacher::vae() {
    if (!vae_) {
        const fs::path root(spec_.folder);
        const std::string path = fs::is_directory(root / "vae") ? (root / "vae").string() : spec_.folder;
        vae_ = std::make_unique<vae::LoadedVAE>(vae::load_vae(path, spec_.device));
        SURGEON_CHECK(vae_->stats.has_value(), "{}: the VAE has no latent mean/std", vae_->weights_path);
        SURGEON_CHECK(vae_->model->config().z_dim == cfg_.out_dim, "{}: the VAE's z_dim {} does not match the DiT's "
                      "out_dim {}", vae_->weights_path, vae_->model->config().z_dim, cfg_.out_dim);
    }
    return *vae_;
}

torch::Tensor WanTeacher::noise(uint64_t index) const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(splitmix64(spec_.seed + index));
    return at::randn({1, cfg_.out_dim, (spec_.frames - 1) / 4 + 1, spec_.height / 8, spec_.width / 8}, gen);
}

torch::Tensor WanTeacher::context(int64_t prompt) const {
    const int64_t row = prompt < 0 ? contexts_.size(0) - 1 : prompt;
    return contexts_.narrow(0, row, 1);
}

Stage1Source WanTeacher::stage1_source(int64_t sample_steps) {
    Stage1Source src;
    src.dit = teacher_dit();
    src.grid = grid();
    src.items = training_prompts();
    auto record = [this, sample_steps](int64_t first, int64_t count, bool heldout) {
        AttentionRecorder rec(grid(), {}, torch::kBFloat16, spec_.device);
        auto opts = spec_.sampling;
        if (sample_steps > 0) opts.steps = sample_steps;
        opts.progress = false;
        opts.tap = &rec.tap();
        const int64_t offset = heldout ? training_prompts() : 0;
        for (int64_t n = first; n < first + count; ++n) {
            const auto z = sample_video(teacher_dit(), noise(static_cast<uint64_t>(offset + n)),
                                        context(offset + n).to(spec_.device), context(-1).to(spec_.device), opts);
            const std::string path = fmt::format("{}/teacher-samples/{}-{}.safetensors", work_, offset + n, opts.steps);
            if (!heldout && !file_exists(path)) {
                fs::create_directories(fs::path(path).parent_path());
                save_safetensors(path, {{"latents", z.to(torch::kCPU, torch::kFloat32).contiguous()}});
            }
        }
        return rec.samples();
    };
    src.record = [record](int64_t first, int64_t count) { return record(first, count, false); };
    src.record_heldout = [this, record]() { return record(0, spec_.heldout, true); };
    return src;
}

torch::Tensor WanTeacher::teacher_sample(int64_t n, int64_t steps) {
    auto opts = spec_.sampling;
    if (steps > 0) opts.steps = steps;
    const std::string path = fmt::format("{}/teacher-samples/{}-{}.safetensors", work_, n, opts.steps);
    if (file_exists(path)) return load_safetensors(path).at("latents");
    opts.progress = false;
    const auto z = sample_video(teacher_dit(), noise(static_cast<uint64_t>(n)), context(n).to(spec_.device),
                                context(-1).to(spec_.device), opts)
                       .to(torch::kCPU, torch::kFloat32)
                       .contiguous();
    fs::create_directories(fs::path(path).parent_path());
    save_safetensors(path, {{"latents", z}});
    return z;
}

std::vector<std::pair<torch::Tensor, int64_t>> WanTeacher::stage3_latents(int64_t steps) {
    std::vector<std::pair<torch::Tensor, int64_t>> out;
    if (spec_.videos.empty()) {
        for (int64_t n = 0; n < training_prompts(); ++n) out.emplace_back(teacher_sample(n, steps), n);
        return out;
    }
    const std::string cache = work_ + "/video-latents.safetensors";
    TensorMap lat = file_exists(cache) ? load_safetensors(cache) : TensorMap{};
    if (lat.empty()) {
        torch::NoGradGuard ng;
        const auto files = video_files(spec_.videos);
        for (size_t n = 0; n < files.size(); ++n) {
            const auto v = fit_video(read_video(files[n], spec_.frames), spec_.frames, spec_.height, spec_.width, files[n]);
            const auto mu = vae().model->encode(v.unsqueeze(0).to(spec_.device)).mean;  // [1, z, F', h, w]
            lat[fmt::format("{}", n)] = vae().stats->normalize(mu).to(torch::kCPU, torch::kFloat32).contiguous();
        }
        save_safetensors(cache, lat);
    }
    for (int64_t n = 0; n < training_prompts(); ++n) out.emplace_back(lat.at(fmt::format("{}", n)), n);
    return out;
}

FinetuneResult WanTeacher::finetune(const FinetuneConfig& c, int64_t stop_after) {
    c.validate();
    // The data: clean latents, each with its prompt's context (CFG dropout: the negative prompt's).
    auto latents = std::make_shared<std::vector<std::pair<torch::Tensor, int64_t>>>(stage3_latents(spec_.sampling.steps));
    auto ctx = std::make_shared<torch::Tensor>(contexts_);
    auto student = load_wan_student(c.student, StudentSpec{}, torch::kCPU, Precision::Float32).loaded.model;
    WanModel teacher = c.teacher_weight > 0 ? teacher_dit() : WanModel{nullptr};
    if (teacher) {
        teacher->to(c.device);
        for (auto& q : teacher->parameters()) q.set_requires_grad(false);
    }
    Stage3Hooks h;
    h.dit = student;
    h.prepare = [student, &c]() mutable {
        student->to(c.device);
        student->set_precision(c.device.is_cuda() ? parse_precision(c.dtype) : Precision::Float32, false);
        student->set_finite_checks(false);
        student->train();
    };
    h.batch = [latents, &c](int64_t step) {
        TrainBatch b;
        SplitMix64 rng(splitmix64(c.data_seed * 1000003ull + static_cast<uint64_t>(step)));
        auto gen = at::make_generator<at::CPUGeneratorImpl>(rng.next());
        std::vector<torch::Tensor> x0;
        const int64_t n = static_cast<int64_t>(latents->size());
        for (int64_t i = 0; i < c.batch; ++i) {
            const auto& [z, prompt] = (*latents)[static_cast<size_t>((step * c.batch + i) % n)];
            x0.push_back(z);
            b.prompts.push_back(rng.uniform() < c.cfg_dropout ? std::string("-1") : std::to_string(prompt));
        }
        b.videos = torch::cat(x0);
        b.eps = at::randn(b.videos.sizes(), gen);
        b.sigma = torch::sigmoid(at::randn({c.batch}, gen) * c.logit_std + c.logit_mean);
        return b;
    };
    h.forward = [student, ctx, &c](const TrainBatch& b) mutable {
        FlowMatchingTerm f;
        f.x0 = b.videos.to(c.device);
        f.eps = b.eps.to(c.device);
        f.sigma = b.sigma.to(c.device).view({-1, 1, 1, 1, 1});
        f.xs = (1 - f.sigma) * f.x0 + f.sigma * f.eps;
        std::vector<torch::Tensor> rows;
        for (const auto& p : b.prompts) {
            const int64_t i = std::stoll(p);
            rows.push_back(ctx->narrow(0, i < 0 ? ctx->size(0) - 1 : i, 1));
        }
        f.ctx = torch::cat(rows).to(c.device);
        f.v = student->forward(f.xs, f.sigma.view({-1}) * 1000.0, f.ctx);
        f.loss = torch::mse_loss(f.v, f.eps - f.x0);
        return f;
    };
    h.teacher = [teacher](const TrainBatch&, const FlowMatchingTerm& fm) mutable {
        return teacher->forward(fm.xs, fm.sigma.view({-1}) * 1000.0, fm.ctx);
    };
    const std::string folder = spec_.folder;
    h.export_model = [student, folder, &c](const std::string& dir) {
        save_wan_student_folder(student, folder, dir, c.save_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32);
    };
    h.export_marker = kPlanFileName;
    return run_stage3(c, h, stop_after);
}

std::vector<torch::Tensor> WanTeacher::heldout_videos(const std::string& model, int64_t n, int64_t steps) {
    auto dit = model == spec_.folder ? teacher_dit()
                                     : load_wan_student(model, StudentSpec{}, spec_.device, spec_.precision).loaded.model;
    dit->eval();
    auto opts = spec_.sampling;
    if (steps > 0) opts.steps = steps;
    opts.progress = false;
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < std::min(n, spec_.heldout); ++i) {
        const int64_t p = training_prompts() + i;
        const auto z = sample_video(dit, noise(static_cast<uint64_t>(p)), context(p).to(spec_.device),
                                    context(-1).to(spec_.device), opts);
        torch::NoGradGuard ng;
        out.push_back(vae::decode_latents(vae(), z.to(spec_.device), true)[0].to(torch::kCPU, torch::kFloat32));
    }
    return out;
}

}  // namespace surgeon
