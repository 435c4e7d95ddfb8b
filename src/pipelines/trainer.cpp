// Flow-matching training of a synthetic-world teacher (see trainer.h). Data is rendered on the fly on the CPU
// (parallel over the batch, one batch prefetched while the device trains) from deterministic world seeds, so
// a resumed run sees exactly the batches an uninterrupted one would.
#include "pipelines/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>

#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/video_io.h"
#include "core/plot.h"
#include "pipelines/flat_adamw.h"
#include "model/model_io.h"
#include "world/prompt.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------------------------------------ config
namespace {
// Training must not draw SynthBench's held-out evaluation clips (world.h: the world seed split).
void check_world_seeds(const TrainConfig& c) {
    SURGEON_CHECK(c.seed < UINT64_MAX / world::kWorldSeedsPerTrainSeed, "train config: seed must be below {}, got {}",
                  UINT64_MAX / world::kWorldSeedsPerTrainSeed, c.seed);
    const uint64_t first = world::train_world_seed(c.seed, 0), count = static_cast<uint64_t>(c.steps * c.batch);
    SURGEON_CHECK(count <= world::kWorldSeedsPerTrainSeed,
                  "train config: steps x batch = {} clips exceeds the {} world seeds of one training seed", count,
                  world::kWorldSeedsPerTrainSeed);
    SURGEON_CHECK(world::avoids_eval_world_seeds(first, count),
                  "train config: seed {} draws world seeds {}..{}, which are SynthBench's held-out evaluation seeds "
                  "[{}, {}); pick another seed", c.seed, first, first + count - 1, world::kEvalWorldSeedBase,
                  world::kEvalWorldSeedBase + world::kWorldSeedsPerTrainSeed);
}
}  // namespace

TrainConfig TrainConfig::from_json(const json& j) {
    TrainConfig c;
    try {
        if (j.contains("model")) c.model = WanConfig::from_official_json(j["model"]);
        // world, text_encoder and sampling have the same schema as a model folder's surgeon.json.
        const SynthSettings st = SynthSettings::from_json(j);
        c.world = st.size;
        c.sampling = st.sampling;
        c.position_channels = st.position_channels;
        if (j.contains("text_encoder")) c.text_encoder = st.text_encoder;
        const json t = j.value("train", json::object());
        c.steps = t.value("steps", c.steps);
        c.batch = t.value("batch", c.batch);
        c.warmup = t.value("warmup", c.warmup);
        c.lr = t.value("lr", c.lr);
        c.min_lr_ratio = t.value("min_lr_ratio", c.min_lr_ratio);
        c.weight_decay = t.value("weight_decay", c.weight_decay);
        c.beta1 = t.value("beta1", c.beta1);
        c.beta2 = t.value("beta2", c.beta2);
        c.grad_clip = t.value("grad_clip", c.grad_clip);
        c.ema = t.value("ema", c.ema);
        c.sigma_sampling = t.value("sigma_sampling", c.sigma_sampling);
        c.logit_mean = t.value("logit_mean", c.logit_mean);
        c.logit_std = t.value("logit_std", c.logit_std);
        c.cfg_dropout = t.value("cfg_dropout", c.cfg_dropout);
        c.seed = t.value("seed", c.seed);
        c.log_every = t.value("log_every", c.log_every);
        c.checkpoint_every = t.value("checkpoint_every", c.checkpoint_every);
        c.dtype = t.value("dtype", c.dtype);
        c.device = t.value("device", c.device);
        c.max_shard_bytes = t.value("max_shard_bytes", c.max_shard_bytes);
        c.init_from = t.value("init_from", c.init_from);
        c.optimizer = t.value("optimizer", c.optimizer);
        c.exclude_motions = t.value("exclude_motions", c.exclude_motions);
        c.position_init_std = t.value("position_init_std", c.position_init_std);
        c.text_pos_init_std = t.value("text_pos_init_std", c.text_pos_init_std);
        c.swap_contrast = t.value("swap_contrast", c.swap_contrast);
        c.swap_margin = t.value("swap_margin", c.swap_margin);
        c.swap_kinds = t.value("swap_kinds", c.swap_kinds);
        c.swap_sigma_min = t.value("swap_sigma_min", c.swap_sigma_min);
    } catch (const json::exception& e) {
        fail("train config: {}", e.what());
    }
    SURGEON_CHECK(c.model.out_dim == 3, "train config: model out_dim must be 3 (RGB pixels), got {}", c.model.out_dim);
    const int64_t in_dim = expected_in_dim(c.position_channels, c.model.out_dim);
    SURGEON_CHECK(c.model.in_dim == in_dim, "train config: model in_dim must be {} (RGB{}), got {}", in_dim,
                  c.position_channels ? " + 3 position channels" : "; set \"position_channels\": true for 6", c.model.in_dim);
    SURGEON_CHECK(c.text_encoder.dim == c.model.text_dim, "train config: text_encoder.dim {} != model.text_dim {}",
                  c.text_encoder.dim, c.model.text_dim);
    SURGEON_CHECK(c.text_encoder.text_len <= c.model.text_len, "train config: text_encoder.text_len {} > model.text_len {}",
                  c.text_encoder.text_len, c.model.text_len);
    const auto& p = c.model.patch_size;
    SURGEON_CHECK(c.world.frames % p[0] == 0 && c.world.height % p[1] == 0 && c.world.width % p[2] == 0,
                  "train config: world size {}x{}x{} not divisible by the patch size", c.world.frames, c.world.height,
                  c.world.width);
    SURGEON_CHECK(c.steps >= 1 && c.batch >= 1 && c.warmup >= 0, "train config: steps/batch must be >= 1");
    SURGEON_CHECK(c.lr > 0 && c.lr < 1, "train config: lr must be in (0, 1), got {}", c.lr);
    SURGEON_CHECK(c.ema >= 0 && c.ema < 1, "train config: ema must be in [0, 1), got {}", c.ema);
    SURGEON_CHECK(c.sigma_sampling == "logit_normal" || c.sigma_sampling == "uniform",
                  "train config: sigma_sampling must be logit_normal or uniform, got '{}'", c.sigma_sampling);
    SURGEON_CHECK(c.optimizer == "flat" || c.optimizer == "torch", "train config: optimizer must be flat or torch, got '{}'",
                  c.optimizer);
    SURGEON_CHECK(c.dtype == "bf16" || c.dtype == "bf16-lean" || c.dtype == "fp32",
                  "train config: dtype must be bf16, bf16-lean or fp32, got '{}'", c.dtype);
    SURGEON_CHECK(c.log_every >= 1 && c.checkpoint_every >= 1, "train config: log_every/checkpoint_every must be >= 1");
    for (const auto& m : c.exclude_motions) {
        try {
            (void)world::parse_motion(m);
        } catch (const Error& e) {
            fail("train config: exclude_motions: {}", e.what());
        }
    }
    SURGEON_CHECK(c.position_init_std >= 0 && c.position_init_std < 1,
                  "train config: position_init_std must be in [0, 1), got {}", c.position_init_std);
    SURGEON_CHECK(c.swap_contrast >= 0 && c.swap_margin >= 0,
                  "train config: swap_contrast and swap_margin must be >= 0, got {} and {}", c.swap_contrast,
                  c.swap_margin);
    for (const auto& k : c.swap_kinds)
        SURGEON_CHECK(k == "direction" || k == "gradient" || k == "binding",
                      "train config: swap_kinds: unknown '{}' (direction, gradient, binding)", k);
    SURGEON_CHECK(c.swap_contrast == 0 || !c.swap_kinds.empty(), "train config: swap_contrast needs at least one swap_kinds entry");
    SURGEON_CHECK(c.swap_sigma_min >= 0 && c.swap_sigma_min < 1, "train config: swap_sigma_min must be in [0, 1), got {}",
                  c.swap_sigma_min);
    SURGEON_CHECK(c.swap_sigma_min == 0 || c.swap_contrast > 0, "train config: swap_sigma_min {} needs swap_contrast > 0",
                  c.swap_sigma_min);
    SURGEON_CHECK(c.text_pos_init_std >= 0 && c.text_pos_init_std <= 10,
                  "train config: text_pos_init_std must be in [0, 10], got {}", c.text_pos_init_std);
    SURGEON_CHECK(c.position_init_std == 0 || c.position_channels,
                  "train config: position_init_std needs \"position_channels\": true");
    SURGEON_CHECK(c.exclude_motions.size() < static_cast<size_t>(world::kNumMotions),
                  "train config: exclude_motions leaves no motion to train on");
    check_world_seeds(c);
    return c;
}

json TrainConfig::to_json() const {
    SynthSettings st;
    st.size = world;
    st.text_encoder = text_encoder;
    st.sampling = sampling;
    st.position_channels = position_channels;
    json j = st.to_json();
    j["model"] = model.to_json();
    j["train"] = json{{"steps", steps}, {"batch", batch}, {"warmup", warmup}, {"lr", lr}, {"min_lr_ratio", min_lr_ratio},
                  {"weight_decay", weight_decay}, {"beta1", beta1}, {"beta2", beta2}, {"grad_clip", grad_clip},
                  {"ema", ema}, {"sigma_sampling", sigma_sampling}, {"logit_mean", logit_mean},
                  {"logit_std", logit_std}, {"cfg_dropout", cfg_dropout}, {"seed", seed}, {"log_every", log_every},
                  {"checkpoint_every", checkpoint_every}, {"dtype", dtype}, {"device", device},
                  {"max_shard_bytes", max_shard_bytes}, {"init_from", init_from}, {"optimizer", optimizer},
                  {"exclude_motions", exclude_motions}, {"position_init_std", position_init_std},
                  {"text_pos_init_std", text_pos_init_std},
                  {"swap_contrast", swap_contrast}, {"swap_margin", swap_margin}, {"swap_kinds", swap_kinds},
                  {"swap_sigma_min", swap_sigma_min}};
    return j;
}

// ------------------------------------------------------------------------------------------------ helpers
namespace {

uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// The prompt to contrast with (swap_contrast) and its kind, or {"", ""} when the sample has nothing of swap_kinds
// to swap.
std::pair<std::string, std::string> swapped_prompt(const TrainConfig& c, const world::WorldSpec& spec, uint64_t seed) {
    std::vector<std::pair<world::WorldSpec, std::string>> options;
    for (const auto& k : c.swap_kinds) {
        if (k == "direction") {
            // The clip played backwards: every direction swapped (when there is one to swap).
            auto rev = spec;
            bool any = false;
            for (auto& o : rev.objects) {
                const auto r = world::reversed(o.motion);
                any = any || r != o.motion;
                o.motion = r;
            }
            if (any) options.emplace_back(std::move(rev), k);
        } else if (k == "gradient" && spec.background.kind != world::BackgroundKind::Solid &&
                   spec.background.first != spec.background.second) {
            auto mirrored = spec;
            std::swap(mirrored.background.first, mirrored.background.second);
            options.emplace_back(std::move(mirrored), k);
        } else if (k == "binding" && spec.objects.size() == 2) {
            // The two objects' colours (or shapes) exchanged: the same words, bound the other way round.
            const auto& a = spec.objects[0];
            const auto& b = spec.objects[1];
            if (a.colour != b.colour) {
                auto sw = spec;
                std::swap(sw.objects[0].colour, sw.objects[1].colour);
                options.emplace_back(std::move(sw), k);
            }
            if (a.shape != b.shape) {
                auto sw = spec;
                std::swap(sw.objects[0].shape, sw.objects[1].shape);
                options.emplace_back(std::move(sw), k);
            }
        }
    }
    if (options.empty()) return {};
    const auto& [sw, kind] = options[splitmix(seed ^ 0x5a5a) % options.size()];
    return {world::prompt(sw), kind};
}

bool excluded(const TrainConfig& c, const world::WorldSpec& spec) {
    for (const auto& o : spec.objects)
        for (const auto& m : c.exclude_motions)
            if (world::to_string(o.motion) == m) return true;
    return false;
}

}  // namespace

TrainBatch make_train_batch(const TrainConfig& c, int64_t step) {
    TrainBatch b;
    const int64_t B = c.batch;
    std::vector<torch::Tensor> vids(B);
    b.prompts.resize(B);
    std::vector<std::pair<std::string, std::string>> swapped(B);  // (prompt, kind)
    at::parallel_for(0, B, 1, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) {
            uint64_t seed = world::train_world_seed(c.seed, static_cast<uint64_t>(step * B + i));
            auto spec = world::sample_spec(seed);
            while (excluded(c, spec)) spec = world::sample_spec(seed = splitmix(seed));
            vids[i] = world::render(spec, c.world);
            const double u = static_cast<double>(splitmix(seed ^ 0xc0ffee) >> 11) / 9007199254740992.0;
            b.prompts[i] = u < c.cfg_dropout ? "" : world::prompt(spec);
            if (c.swap_contrast > 0 && !b.prompts[i].empty()) swapped[i] = swapped_prompt(c, spec, seed);
        }
    });
    for (int64_t i = 0; i < B; ++i)
        if (!swapped[i].first.empty()) {
            b.swapped_index.push_back(i);
            b.swapped_prompts.push_back(std::move(swapped[i].first));
            b.swapped_kinds.push_back(std::move(swapped[i].second));
        }
    b.videos = torch::stack(vids, 0);
    // Noise and sigma from a per-step CPU generator: identical across resume and devices. Drawn here, on the
    // prefetch thread, so the ~35 ms of CPU randn per batch does not stall the GPU loop.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed * 7919 + static_cast<uint64_t>(step) + 1);
    b.eps = at::randn(b.videos.sizes(), gen);
    b.sigma = c.sigma_sampling == "uniform" ? at::rand({B}, gen)
                                            : torch::sigmoid(at::randn({B}, gen) * c.logit_std + c.logit_mean);
    // Drawn last from the same generator, so runs without it keep their exact noise and sigma streams.
    const auto n_swapped = static_cast<int64_t>(b.swapped_index.size());
    if (c.swap_sigma_min > 0 && n_swapped > 0)
        b.swap_sigma = c.swap_sigma_min + (1.0 - c.swap_sigma_min) * at::rand({n_swapped}, gen);
    if (c.device.rfind("cuda", 0) == 0 && torch::cuda::is_available()) {
        // Page-locked, so the training loop's copies to the GPU are asynchronous (non_blocking) and fast.
        b.videos = b.videos.pin_memory();
        b.eps = b.eps.pin_memory();
    }
    return b;
}

namespace {

// Wan's init_weights: xavier-uniform Linear weights, zero biases, N(0, 0.02) for the text/time embeddings, zero head.
void init_wan_weights(WanModel& m) {
    torch::NoGradGuard ng;
    for (auto& mod : m->modules(false)) {
        if (auto* l = mod->as<torch::nn::LinearImpl>()) {
            torch::nn::init::xavier_uniform_(l->weight);
            if (l->bias.defined()) l->bias.zero_();
        }
    }
    torch::nn::init::xavier_uniform_(m->patch_embedding->weight.view({m->patch_embedding->weight.size(0), -1}));
    for (auto& p : m->text_embedding->parameters())
        if (p.dim() == 2) torch::nn::init::normal_(p, 0.0, 0.02);
    for (auto& p : m->time_embedding->parameters())
        if (p.dim() == 2) torch::nn::init::normal_(p, 0.0, 0.02);
    m->head->head->weight.zero_();
}

double lr_at(const TrainConfig& c, int64_t step) {
    if (step < c.warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup + 1);
    const double p = c.steps > c.warmup ? static_cast<double>(step - c.warmup) / static_cast<double>(c.steps - c.warmup) : 1.0;
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, p))));
}

// A simple line plot (log10 loss vs step) as an image [3, H, W] in [-1, 1].
torch::Tensor plot_loss(const std::vector<std::array<double, 5>>& hist) {
    std::vector<double> x, y;
    for (const auto& h : hist) x.push_back(h[0]), y.push_back(h[1]);
    LinePlotOptions o;
    o.title = "training loss (flow matching MSE, mean per log window)";
    o.x_label = "step";
    o.y_label = "loss (log)";
    return render_line_plot(x, y, o);
}

void write_history(const std::string& dir, const std::vector<std::array<double, 5>>& hist) {
    atomic_write((fs::path(dir) / "loss.csv").string(), [&](std::ostream& o) {
        o << "step,loss,lr,grad_norm,elapsed_s\n";
        for (const auto& h : hist) o << fmt::format("{},{:.6g},{:.6g},{:.6g},{:.1f}\n", h[0], h[1], h[2], h[3], h[4]);
    });
    write_png((fs::path(dir) / "loss.png").string(), plot_loss(hist));
}

TensorMap prefixed(const TensorMap& m, const std::string& p) {
    TensorMap o;
    for (const auto& [n, t] : m) o[p + n] = t.detach().to(torch::kCPU).contiguous();
    return o;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ training
SynthModel init_synth_model(const TrainConfig& c) {
    torch::manual_seed(c.seed);
    SynthModel m;
    m.settings.size = c.world;
    m.settings.text_encoder = c.text_encoder;
    m.settings.text_encoder.vocab_size = m.tokenizer.vocab_size();
    m.settings.sampling = c.sampling;
    m.settings.position_channels = c.position_channels;
    m.dit = WanModel(c.model);
    init_wan_weights(m.dit);
    m.text_encoder = world::TextEncoder(m.settings.text_encoder);
    return m;
}

TrainResult train_synth_model(const TrainConfig& c, const std::string& out_dir, bool resume, bool progress,
                              int64_t stop_after, double time_limit_s) {
    fs::create_directories(out_dir);
    torch::Device dev(c.device);
    SURGEON_CHECK(!dev.is_cuda() || torch::cuda::is_available(), "train: device '{}' requested but no CUDA GPU", c.device);
    check_world_seeds(c);  // again: --steps may have changed the range since from_json
    // The record says how the run began: a resume without --init-from keeps the warm start recorded before.
    const fs::path cfg_path = fs::path(out_dir) / "train_config.json";
    TrainConfig record = c;
    if (resume && c.init_from.empty() && fs::exists(cfg_path)) {
        const auto before = json::parse(read_text_file(cfg_path.string()));
        if (before.contains("train")) record.init_from = before["train"].value("init_from", std::string());
    }
    atomic_write(cfg_path.string(), [&](std::ostream& o) { o << record.to_json().dump(1) << "\n"; });

    SURGEON_CHECK(c.position_init_std == 0 || !c.init_from.empty(),
                  "train: position_init_std applies to a warm start; a fresh model's patch embedding is random already");
    SURGEON_CHECK(c.text_pos_init_std == 0 || !c.init_from.empty(),
                  "train: text_pos_init_std applies to a warm start; a fresh text encoder's positions are N(0, 1) already");
    SynthModel m = init_synth_model(c);
    if (!c.init_from.empty()) {
        // Strict: every tensor of the folder must match this config's model by name, shape and (after the
        // fp32 up-cast of the stored bf16) dtype; the errors name the tensor.
        SynthModel src = load_synth_model(c.init_from, torch::kCPU, Precision::Float32);
        SURGEON_CHECK(src.settings.text_encoder.vocab_size == m.settings.text_encoder.vocab_size,
                      "train: --init-from {}: text encoder vocabulary {} != this world's {}", c.init_from,
                      src.settings.text_encoder.vocab_size, m.settings.text_encoder.vocab_size);
        TensorMap dit;
        for (const auto& [n, t] : state_dict(*src.dit)) dit[n] = t.detach().to(torch::kFloat32);
        if (c.position_channels && !src.settings.position_channels) {
            // Adding position channels to a model trained without them: the patch embedding gets zero weights for
            // the new input channels, so the warm-started model computes exactly what the source did.
            auto& w = dit.at("patch_embedding.weight");  // [dim, 3, p0, p1, p2]
            auto wide = torch::zeros_like(m.dit->patch_embedding->weight.detach().cpu());
            SURGEON_CHECK(wide.size(1) == w.size(1) + 3, "train: --init-from {}: patch_embedding.weight has {} input channels, expected {}",
                          c.init_from, w.size(1), wide.size(1) - 3);
            wide.narrow(1, 0, w.size(1)).copy_(w);
            w = wide;
            std::fprintf(stderr, "train: --init-from %s has no position channels; added 3, zero-initialised\n",
                         c.init_from.c_str());
        }
        if (c.position_init_std > 0) {
            auto& w = dit.at("patch_embedding.weight");  // [dim, 3 + 3, p0, p1, p2]
            auto gen = at::detail::createCPUGenerator(c.seed ^ 0x9051u);
            w = w.clone();
            w.narrow(1, w.size(1) - 3, 3).normal_(0.0, c.position_init_std, gen);
            std::fprintf(stderr, "train: position-channel weights drawn from N(0, %g^2)\n", c.position_init_std);
        }
        load_state_dict_strict(*m.dit, dit, {}, c.init_from);
        world::load_text_encoder_state(m.text_encoder, world::text_encoder_state(src.text_encoder));
        if (c.text_pos_init_std > 0) {
            torch::NoGradGuard ng;
            auto gen = at::detail::createCPUGenerator(c.seed ^ 0x7e47u);
            auto params = m.text_encoder->named_parameters();
            auto* pos = params.find("pos_embedding");
            SURGEON_CHECK(pos != nullptr, "train: the text encoder has no pos_embedding");
            pos->copy_(torch::empty_like(*pos).normal_(0.0, c.text_pos_init_std, gen));
            std::fprintf(stderr, "train: text position embeddings drawn from N(0, %g^2)\n", c.text_pos_init_std);
        }
    }
    m.to(dev);
    // CUDA: the configured compute precision over fp32 master weights; CPU: always fp32.
    m.dit->set_precision(dev.is_cuda() ? parse_precision(c.dtype) : Precision::Float32, /*cast_weights=*/false);
    m.dit->train();
    m.dit->set_finite_checks(false);  // no host sync per step; a diverging run is caught by the loss check
    m.text_encoder->train();

    // Parameters: weight decay on matrices only.
    std::vector<torch::Tensor> decay, no_decay, all;
    // The parameters themselves (not detached copies: those never receive gradients). Until 2026-11-29 the text
    // encoder came from text_encoder_state(), which detaches, so it was never trained (the stage-1 teacher's
    // encoder is its seeded initialisation); the optimiser twin test found it.
    auto dit_sd = state_dict(*m.dit);
    TensorMap te_sd;
    for (const auto& p : m.text_encoder->named_parameters()) te_sd[p.key()] = p.value();
    SURGEON_CHECK(m.text_encoder->named_buffers().is_empty() && m.dit->named_buffers().is_empty(),
                  "train: modules with buffers are not supported by the trainer");
    for (auto* sd : {&dit_sd, &te_sd})
        for (auto& [n, p] : *sd) {
            (p.dim() >= 2 ? decay : no_decay).push_back(p);
            all.push_back(p);
        }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).weight_decay(c.weight_decay)));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).weight_decay(0.0)));
    // Optimiser: FlatAdamW (fast: parameters, gradients, moments and EMA in flat buffers) or torch's AdamW (its
    // slow twin). Same math; the checkpoint stores moments per parameter index of `all` for both.
    const bool flat = c.optimizer == "flat";
    std::unique_ptr<torch::optim::AdamW> topt;
    std::unique_ptr<FlatAdamW> fopt;
    std::vector<size_t> flat_index(all.size());  // index in `all` -> index in fopt->params()
    torch::Tensor ema_flat;
    TensorMap ema_dit, ema_te;  // EMA copies (views into ema_flat with the flat optimiser)
    {
        torch::NoGradGuard ng;
        if (flat) {
            fopt = std::make_unique<FlatAdamW>(decay, no_decay,
                                               FlatAdamWOptions{c.beta1, c.beta2, 1e-8, c.weight_decay});
            std::map<const void*, size_t> pos;
            for (size_t i = 0; i < fopt->params().size(); ++i) pos[fopt->params()[i].unsafeGetTensorImpl()] = i;
            for (size_t i = 0; i < all.size(); ++i) flat_index[i] = pos.at(all[i].unsafeGetTensorImpl());
            ema_flat = fopt->flat_data().clone();
            for (auto* sd : {&dit_sd, &te_sd})
                for (auto& [n, p] : *sd)
                    (sd == &dit_sd ? ema_dit : ema_te)[n] = fopt->view(ema_flat, pos.at(p.unsafeGetTensorImpl()));
        } else {
            topt = std::make_unique<torch::optim::AdamW>(std::move(groups));
            for (auto& [n, p] : dit_sd) ema_dit[n] = p.detach().clone();
            for (auto& [n, p] : te_sd) ema_te[n] = p.detach().clone();
        }
    }

    std::vector<std::array<double, 5>> hist;  // step, loss, lr, grad_norm, elapsed
    int64_t start = 0;
    double elapsed_before = 0;
    // atomic_write_dir keeps checkpoint/ or, after a kill mid-swap, checkpoint.old/ complete.
    const fs::path ck = fs::path(out_dir) / "checkpoint", ck_old = fs::path(out_dir) / "checkpoint.old";
    if (resume) {
        fs::path src = fs::exists(ck / "progress.json") ? ck : (fs::exists(ck_old / "progress.json") ? ck_old : fs::path());
        if (!src.empty()) {
            auto prog = json::parse(read_text_file((src / "progress.json").string()));
            start = prog.at("step").get<int64_t>();
            elapsed_before = prog.value("elapsed_s", 0.0);
            auto st = load_safetensors((src / "state.safetensors").string());
            torch::NoGradGuard ng;
            for (auto& [n, p] : dit_sd) p.copy_(st.at("dit." + n));
            for (auto& [n, p] : te_sd) p.copy_(st.at("text_encoder." + n));
            for (auto& [n, p] : ema_dit) p.copy_(st.at("ema.dit." + n));
            for (auto& [n, p] : ema_te) p.copy_(st.at("ema.text_encoder." + n));
            auto h = st.at("history").to(torch::kFloat64);
            for (int64_t i = 0; i < h.size(0); ++i) {
                std::array<double, 5> r{};
                for (int k = 0; k < 5; ++k) r[k] = h[i][k].item<double>();
                hist.push_back(r);
            }
            for (size_t i = 0; i < all.size(); ++i) {
                const std::string k = "opt." + std::to_string(i) + ".";
                if (!st.count(k + "exp_avg")) continue;
                if (flat) {
                    fopt->exp_avg_of(flat_index[i]).copy_(st.at(k + "exp_avg"));
                    fopt->exp_avg_sq_of(flat_index[i]).copy_(st.at(k + "exp_avg_sq"));
                    fopt->set_steps(st.at(k + "step").item<int64_t>());
                    continue;
                }
                auto ps = std::make_unique<torch::optim::AdamWParamState>();
                ps->step(st.at(k + "step").item<int64_t>());
                ps->exp_avg(st.at(k + "exp_avg").to(dev).clone());
                ps->exp_avg_sq(st.at(k + "exp_avg_sq").to(dev).clone());
                topt->state()[all[i].unsafeGetTensorImpl()] = std::move(ps);
            }
            std::fprintf(stderr, "resumed from %s at step %lld\n", src.string().c_str(), static_cast<long long>(start));
        }
    }

    auto save_checkpoint = [&](int64_t step, double elapsed) {
        TensorMap st;
        for (const auto& [n, t] : prefixed(dit_sd, "dit.")) st[n] = t;
        for (const auto& [n, t] : prefixed(te_sd, "text_encoder.")) st[n] = t;
        for (const auto& [n, t] : prefixed(ema_dit, "ema.dit.")) st[n] = t;
        for (const auto& [n, t] : prefixed(ema_te, "ema.text_encoder.")) st[n] = t;
        auto h = torch::zeros({static_cast<int64_t>(hist.size()), 5}, torch::kFloat64);
        for (size_t i = 0; i < hist.size(); ++i)
            for (int k = 0; k < 5; ++k) h[i][k] = hist[i][k];
        st["history"] = h;
        // AdamW moments by parameter index (own format: exact and independent of torch's archive layout).
        for (size_t i = 0; i < all.size(); ++i) {
            const std::string k = "opt." + std::to_string(i) + ".";
            if (flat) {
                if (fopt->steps() == 0) continue;
                st[k + "exp_avg"] = fopt->exp_avg_of(flat_index[i]).to(torch::kCPU).contiguous();
                st[k + "exp_avg_sq"] = fopt->exp_avg_sq_of(flat_index[i]).to(torch::kCPU).contiguous();
                st[k + "step"] = torch::tensor({fopt->steps()}, torch::kInt64);
                continue;
            }
            auto it = topt->state().find(all[i].unsafeGetTensorImpl());
            if (it == topt->state().end()) continue;
            auto& ps = static_cast<torch::optim::AdamWParamState&>(*it->second);
            st[k + "exp_avg"] = ps.exp_avg().detach().to(torch::kCPU).contiguous();
            st[k + "exp_avg_sq"] = ps.exp_avg_sq().detach().to(torch::kCPU).contiguous();
            st[k + "step"] = torch::tensor({ps.step()}, torch::kInt64);
        }
        atomic_write_dir(ck.string(), [&](const std::string& tmp) {
            save_safetensors((fs::path(tmp) / "state.safetensors").string(), st);
            atomic_write((fs::path(tmp) / "progress.json").string(),
                         [&](std::ostream& o) { o << json{{"step", step}, {"elapsed_s", elapsed}}.dump() << "\n"; });
        });
        write_history(out_dir, hist);
    };
    auto export_model = [&]() {
        SynthModel e;
        e.settings = m.settings;
        e.dit = WanModel(c.model);
        e.text_encoder = world::TextEncoder(m.settings.text_encoder);
        load_state_dict_strict(*e.dit, ema_dit, {}, "ema");
        world::load_text_encoder_state(e.text_encoder, prefixed(ema_te, world::kTextEncoderPrefix));
        atomic_write_dir((fs::path(out_dir) / "model").string(), [&](const std::string& tmp) {
            save_synth_model(e, tmp, torch::kBFloat16, static_cast<uint64_t>(c.max_shard_bytes));
        });
    };

    Progress bar("train", c.steps, progress, start);
    auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    const torch::Tensor pos = m.condition(c.batch);  // position planes [B, 3, T, H, W] on dev, or undefined
    std::future<TrainBatch> next;
    if (start < c.steps) next = std::async(std::launch::async, make_train_batch, std::cref(c), start);
    // Loss and gradient norm accumulate on the device and are read once per log window: no per-step host sync,
    // so the CPU can queue the next step's kernels while the GPU finishes this one.
    torch::Tensor window_loss, window_gn;
    int64_t window_n = 0;
    // swap_contrast: mean relative gap (loss_swapped - loss_true) / loss_true per swap kind over the window, shown
    // with the loss (the train log then says, kind by kind, whether the model starts to use the swapped words).
    const int64_t n_kinds = static_cast<int64_t>(c.swap_kinds.size());
    torch::Tensor window_gap;             // [n_kinds] sums of the relative gap, on the device
    std::vector<int64_t> gap_n(n_kinds);  // samples per kind in the window
    std::string gap_text;
    TrainResult res;
    for (int64_t step = start; step < c.steps; ++step) {
        TrainBatch b = next.get();
        if (step + 1 < c.steps) next = std::async(std::launch::async, make_train_batch, std::cref(c), step + 1);
        const double lr = lr_at(c, step);
        if (!flat)
            for (auto& g : topt->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
        auto x0 = b.videos.to(dev, /*non_blocking=*/true);                  // [B, 3, T, H, W]
        auto eps = b.eps.to(dev, /*non_blocking=*/true);                    // [B, 3, T, H, W]
        auto sigma = b.sigma.to(dev).view({-1, 1, 1, 1, 1});
        auto xs = (1 - sigma) * x0 + sigma * eps;
        auto ids = m.tokenizer.encode_batch(b.prompts, c.text_encoder.text_len).to(dev);
        auto ctx = m.text_encoder->forward(ids);
        auto v = m.velocity(xs, sigma.view({-1}) * 1000.0, ctx, pos);
        auto loss = torch::mse_loss(v, eps - x0);
        auto objective = loss;
        if (c.swap_contrast > 0 && !b.swapped_index.empty()) {
            // The same noisy clips with the swapped prompt (reverse direction, mirrored gradient or the objects'
            // colours/shapes exchanged) must do worse than with the true prompt.
            auto idx = torch::tensor(b.swapped_index, torch::kLong).to(dev);
            auto ids_s = m.tokenizer.encode_batch(b.swapped_prompts, c.text_encoder.text_len).to(dev);
            auto ctx_s = m.text_encoder->forward(ids_s);
            auto pos_s = pos.defined() ? pos.index_select(0, idx) : pos;
            auto target = (eps - x0).index_select(0, idx);
            torch::Tensor l_true, l_swap;
            if (b.swap_sigma.defined()) {
                // Its own noise level: the true and the swapped prompt on the same re-noised clips, one forward.
                const int64_t n = idx.size(0);
                auto sc = b.swap_sigma.to(dev).view({-1, 1, 1, 1, 1});
                auto xc = (1 - sc) * x0.index_select(0, idx) + sc * eps.index_select(0, idx);
                auto vv = m.velocity(torch::cat({xc, xc}), torch::cat({sc, sc}).view({-1}) * 1000.0,
                                     torch::cat({ctx.index_select(0, idx), ctx_s}),
                                     pos_s.defined() ? torch::cat({pos_s, pos_s}) : pos_s);
                l_true = (vv.narrow(0, 0, n) - target).pow(2).mean({1, 2, 3, 4});
                l_swap = (vv.narrow(0, n, n) - target).pow(2).mean({1, 2, 3, 4});
            } else {
                auto v_s = m.velocity(xs.index_select(0, idx), sigma.view({-1}).index_select(0, idx) * 1000.0, ctx_s, pos_s);
                l_true = (v.index_select(0, idx) - target).pow(2).mean({1, 2, 3, 4});
                l_swap = (v_s - target).pow(2).mean({1, 2, 3, 4});
            }
            objective = loss + c.swap_contrast * torch::relu((1 + c.swap_margin) * l_true - l_swap).mean();
            torch::NoGradGuard ng;
            std::vector<int64_t> kind(b.swapped_kinds.size());
            for (size_t k = 0; k < kind.size(); ++k) {
                kind[k] = std::find(c.swap_kinds.begin(), c.swap_kinds.end(), b.swapped_kinds[k]) - c.swap_kinds.begin();
                ++gap_n[kind[k]];
            }
            auto rel = ((l_swap - l_true) / l_true.clamp_min(1e-12)).to(torch::kFloat64);
            auto sums = torch::zeros({n_kinds}, rel.options()).index_add_(0, torch::tensor(kind, torch::kLong).to(dev), rel);
            window_gap = window_gap.defined() ? window_gap + sums : sums;
        }
        torch::Tensor gn;
        if (flat) {
            fopt->zero_grad();
            objective.backward();
            gn = fopt->clip_grad_norm(c.grad_clip);
            fopt->step(lr);
        } else {
            topt->zero_grad();
            objective.backward();
            gn = torch::tensor(torch::nn::utils::clip_grad_norm_(all, c.grad_clip), torch::kFloat64);
            topt->step();
        }
        {
            torch::NoGradGuard ng;
            // EMA with warm-up: without it the initial weights keep a share ema^steps of the average
            // (0.999^1500 = 22%), which under-scales the velocity of short runs (seen 2026-11-28).
            const double d = std::min(c.ema, (1.0 + step) / (10.0 + step));
            if (flat) {
                ema_flat.mul_(d).add_(fopt->flat_data(), 1 - d);
            } else {
                for (auto& [n, p] : dit_sd) ema_dit[n].mul_(d).add_(p.detach(), 1 - d);
                for (auto& [n, p] : te_sd) ema_te[n].mul_(d).add_(p.detach(), 1 - d);
            }
        }
        {
            torch::NoGradGuard ng;
            auto ld = loss.detach().to(torch::kFloat64), gd = gn.detach().to(ld.device(), torch::kFloat64);
            window_loss = window_n == 0 ? ld : window_loss + ld;
            window_gn = window_n == 0 ? gd : window_gn + gd;
            ++window_n;
        }
        if ((step + 1) % c.log_every == 0 || step + 1 == c.steps) {
            const double l = window_loss.item<double>() / window_n, g = window_gn.item<double>() / window_n;
            SURGEON_CHECK(std::isfinite(l), "train: loss became {} in steps {}..{} (lower the learning rate?)", l,
                          step + 2 - window_n, step + 1);
            hist.push_back({static_cast<double>(step + 1), l, lr, g, elapsed()});
            res.final_loss = l;
            window_n = 0;
            if (window_gap.defined()) {
                auto sums = window_gap.cpu();
                gap_text = " swap gap";
                for (int64_t k = 0; k < n_kinds; ++k)
                    if (gap_n[k] > 0)
                        gap_text += fmt::format(" {} {:+.1f}%", c.swap_kinds[k], 100.0 * sums[k].item<double>() / gap_n[k]);
                window_gap = torch::Tensor();
                std::fill(gap_n.begin(), gap_n.end(), 0);
            }
        }
        bar.update(step + 1, hist.empty() ? std::string("loss -") : fmt::format("loss {:.4f}{}", hist.back()[1], gap_text));
        const bool timed_out = time_limit_s > 0 &&
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= time_limit_s;
        const bool stop = ((stop_after > 0 && step + 1 >= stop_after) || timed_out) && step + 1 < c.steps;
        if ((step + 1) % c.checkpoint_every == 0 || step + 1 == c.steps || stop) {
            save_checkpoint(step + 1, elapsed());
            if (step + 1 < c.steps) export_model();  // the EMA so far is usable while the run goes on
        }
        if (stop) {
            if (next.valid()) next.wait();
            bar.finish(fmt::format("stopped at step {}", step + 1));
            res.steps_done = step + 1;
            res.seconds = elapsed();
            return res;
        }
    }
    if (!hist.empty()) res.final_loss = hist.back()[1];
    export_model();
    res.steps_done = c.steps;
    res.seconds = elapsed();
    bar.finish(fmt::format("final loss {:.4f}", res.final_loss));
    return res;
}

}  // namespace surgeon
