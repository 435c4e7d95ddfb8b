// Stage 3 of the surgery: fine-tuning a student on the world's flow-matching loss (see stage3_finetune.h).
#include "pipelines/stage3_finetune.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <map>

#include "core/error.h"
#include "core/fs.h"
#include "core/plot.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/video_io.h"
#include "model/model_io.h"
#include "pipelines/flat_adamw.h"
#include "surgery/attention_swap.h"
#include "surgery/student_checkpoint.h"
#include "world/world.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------------------------------------ config
void FinetuneConfig::validate() const {
    auto finite = [](double x) { return std::isfinite(x); };
    SURGEON_CHECK(!student.empty(), "finetune: --student is required");
    SURGEON_CHECK(!out.empty(), "finetune: --out is required");
    SURGEON_CHECK(steps >= 1 && steps <= 100000000, "finetune: steps must be in [1, 1e8], got {}", steps);
    SURGEON_CHECK(batch >= 1 && batch <= 4096, "finetune: batch must be in [1, 4096], got {}", batch);
    SURGEON_CHECK(warmup >= 0, "finetune: warmup must be >= 0, got {}", warmup);
    SURGEON_CHECK(finite(lr) && lr > 0 && lr < 1, "finetune: lr must be finite and in (0, 1), got {}", lr);
    SURGEON_CHECK(finite(min_lr_ratio) && min_lr_ratio >= 0 && min_lr_ratio <= 1,
                  "finetune: min_lr_ratio must be in [0, 1], got {}", min_lr_ratio);
    SURGEON_CHECK(finite(weight_decay) && weight_decay >= 0 && weight_decay < 1,
                  "finetune: weight_decay must be in [0, 1), got {}", weight_decay);
    SURGEON_CHECK(finite(grad_clip) && grad_clip > 0, "finetune: grad_clip must be finite and > 0, got {}", grad_clip);
    SURGEON_CHECK(finite(teacher_weight) && teacher_weight >= 0 && teacher_weight <= 1e6,
                  "finetune: teacher_weight must be finite and in [0, 1e6], got {}", teacher_weight);
    SURGEON_CHECK(teacher_weight == 0 || !teacher.empty(), "finetune: teacher_weight {} needs --teacher", teacher_weight);
    SURGEON_CHECK(teacher.empty() || teacher_weight > 0,
                  "finetune: --teacher {} is only used with --teacher-weight > 0 (got {})", teacher, teacher_weight);
    SURGEON_CHECK(trainable == "all" || trainable == "attention" || trainable == "phi",
                  "finetune: trainable must be all, attention or phi, got '{}'", trainable);
    SURGEON_CHECK(finite(logit_mean) && std::abs(logit_mean) <= 10, "finetune: logit_mean must be in [-10, 10], got {}",
                  logit_mean);
    SURGEON_CHECK(finite(logit_std) && logit_std > 0 && logit_std <= 10, "finetune: logit_std must be in (0, 10], got {}",
                  logit_std);
    SURGEON_CHECK(finite(cfg_dropout) && cfg_dropout >= 0 && cfg_dropout <= 1,
                  "finetune: cfg_dropout must be in [0, 1], got {}", cfg_dropout);
    SURGEON_CHECK(dtype == "fp32" || dtype == "bf16" || dtype == "bf16-lean",
                  "finetune: dtype must be fp32, bf16 or bf16-lean, got '{}'", dtype);
    SURGEON_CHECK(save_dtype == "fp32" || save_dtype == "bf16", "finetune: save_dtype must be fp32 or bf16, got '{}'",
                  save_dtype);
    SURGEON_CHECK(checkpoint_every >= 1, "finetune: checkpoint_every must be >= 1, got {}", checkpoint_every);
    SURGEON_CHECK(log_every >= 1, "finetune: log_every must be >= 1, got {}", log_every);
    SURGEON_CHECK(finite(time_limit_s) && time_limit_s >= 0, "finetune: time limit must be finite and >= 0, got {}",
                  time_limit_s);
    SURGEON_CHECK(!device.is_cuda() || torch::cuda::is_available(), "finetune: device '{}' requested but no CUDA GPU",
                  device.str());
    // The data stream must not reach SynthBench's held-out clips (world.h: the world seed split).
    SURGEON_CHECK(data_seed < UINT64_MAX / world::kWorldSeedsPerTrainSeed, "finetune: data seed must be below {}, got {}",
                  UINT64_MAX / world::kWorldSeedsPerTrainSeed, data_seed);
    const uint64_t first = world::train_world_seed(data_seed, 0), count = static_cast<uint64_t>(steps * batch);
    SURGEON_CHECK(count <= world::kWorldSeedsPerTrainSeed,
                  "finetune: steps x batch = {} clips exceeds the {} world seeds of one data seed", count,
                  world::kWorldSeedsPerTrainSeed);
    SURGEON_CHECK(world::avoids_eval_world_seeds(first, count),
                  "finetune: data seed {} draws world seeds {}..{}, SynthBench's held-out evaluation seeds; pick another",
                  data_seed, first, first + count - 1);
}

json FinetuneConfig::settings_json() const {
    auto canon = [](const std::string& p) { return p.empty() ? p : fs::weakly_canonical(fs::absolute(p)).string(); };
    return json{{"student", canon(student)}, {"teacher", canon(teacher)}, {"steps", steps}, {"batch", batch},
                {"warmup", warmup}, {"lr", lr}, {"min_lr_ratio", min_lr_ratio}, {"weight_decay", weight_decay},
                {"grad_clip", grad_clip}, {"teacher_weight", teacher_weight}, {"trainable", trainable},
                {"data_seed", data_seed}, {"logit_mean", logit_mean}, {"logit_std", logit_std},
                {"cfg_dropout", cfg_dropout}, {"dtype", dtype}, {"save_dtype", save_dtype}, {"log_every", log_every}};
}

TrainConfig finetune_data_config(const FinetuneConfig& c, const SynthModel& m) {
    TrainConfig t;
    t.model = m.dit->config();
    t.text_encoder = m.settings.text_encoder;
    t.world = m.settings.size;
    t.sampling = m.settings.sampling;
    t.position_channels = m.settings.position_channels;
    t.steps = c.steps;
    t.batch = c.batch;
    t.seed = c.data_seed;
    t.sigma_sampling = "logit_normal";
    t.logit_mean = c.logit_mean;
    t.logit_std = c.logit_std;
    t.cfg_dropout = c.cfg_dropout;
    t.swap_contrast = 0;
    t.device = c.device.str();
    return t;
}

std::vector<std::string> finetune_trainable_names(const WanModel& dit, const std::string& trainable) {
    SURGEON_CHECK(trainable == "all" || trainable == "attention" || trainable == "phi",
                  "finetune: trainable must be all, attention or phi, got '{}'", trainable);
    std::vector<std::string> prefixes;
    const AttentionPlan plan = plan_of(dit);
    for (size_t b = 0; b < plan.blocks.size(); ++b) {
        if (plan.blocks[b].kind == AttentionKind::Softmax) continue;
        prefixes.push_back(trainable == "phi" ? phi_prefix(static_cast<int64_t>(b))
                                              : "blocks." + std::to_string(b) + ".self_attn.");
    }
    std::vector<std::string> names;
    for (const auto& p : dit->named_parameters()) {
        const std::string& n = p.key();
        bool take = trainable == "all";
        for (const auto& pre : prefixes) take = take || n.rfind(pre, 0) == 0;
        if (take) names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
}

double flow_matching_loss(SynthModel& m, const TrainBatch& b) {
    torch::NoGradGuard ng;
    const auto dev = m.dit->device();
    auto x0 = b.videos.to(dev), eps = b.eps.to(dev);
    auto sigma = b.sigma.to(dev).view({-1, 1, 1, 1, 1});
    auto xs = (1 - sigma) * x0 + sigma * eps;
    auto ctx = m.encode(b.prompts);
    auto v = m.velocity(xs, sigma.view({-1}) * 1000.0, ctx.to(dev));
    return torch::mse_loss(v, eps - x0).item<double>();
}

// ------------------------------------------------------------------------------------------------ helpers
namespace {

// Same schedule as the trainer's: linear warm-up, then cosine from lr to lr * min_lr_ratio.
double lr_at(const FinetuneConfig& c, int64_t step) {
    if (step < c.warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup + 1);
    const double p = c.steps > c.warmup ? static_cast<double>(step - c.warmup) / static_cast<double>(c.steps - c.warmup) : 1.0;
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, p))));
}

// a equals b or lies inside it (both absolute, canonical).
bool within(const fs::path& a, const fs::path& b) {
    auto ia = a.begin(), ib = b.begin();
    for (; ib != b.end(); ++ia, ++ib) {
        if (ib->empty()) continue;  // trailing separator
        if (ia == a.end() || *ia != *ib) return false;
    }
    return true;
}

fs::path canon(const std::string& p) { return fs::weakly_canonical(fs::absolute(p)); }

using Row = std::array<double, 6>;  // step, loss, teacher_mse, lr, grad_norm, elapsed_s

void write_history(const std::string& dir, const std::vector<Row>& hist) {
    atomic_write((fs::path(dir) / "loss.csv").string(), [&](std::ostream& o) {
        o << "step,loss,teacher_mse,lr,grad_norm,elapsed_s\n";
        for (const auto& h : hist)
            o << fmt::format("{},{:.6g},{:.6g},{:.6g},{:.6g},{:.1f}\n", h[0], h[1], h[2], h[3], h[4], h[5]);
    });
    std::vector<double> x, y;
    for (const auto& h : hist) x.push_back(h[0]), y.push_back(h[1]);
    LinePlotOptions o;
    o.title = "stage 3 fine-tuning (flow matching MSE, mean per log window)";
    o.x_label = "step";
    o.y_label = "loss (log)";
    write_png((fs::path(dir) / "loss.png").string(), render_line_plot(x, y, o));
}

void check_same_architecture(const SynthModel& s, const SynthModel& t, const std::string& teacher) {
    SURGEON_CHECK(s.dit->config().to_json() == t.dit->config().to_json(),
                  "finetune: --teacher {}: DiT config {} differs from the student's {}", teacher,
                  t.dit->config().to_json().dump(), s.dit->config().to_json().dump());
    const auto &a = s.settings.size, &b = t.settings.size;
    SURGEON_CHECK(a.frames == b.frames && a.height == b.height && a.width == b.width,
                  "finetune: --teacher {}: world size {}x{}x{} differs from the student's {}x{}x{}", teacher, b.frames,
                  b.height, b.width, a.frames, a.height, a.width);
    SURGEON_CHECK(s.settings.position_channels == t.settings.position_channels,
                  "finetune: --teacher {}: position_channels {} differs from the student's {}", teacher,
                  t.settings.position_channels, s.settings.position_channels);
}

}  // namespace

// ------------------------------------------------------------------------------------------------ the run
FinetuneResult run_finetune(const FinetuneConfig& c, int64_t stop_after) {
    // 1. Every value and path, before anything is loaded or written.
    c.validate();
    SURGEON_CHECK(is_synth_model_folder(c.student),
                  "finetune: --student {}: not a synth model folder (needs config.json, text_encoder.safetensors, surgeon.json)",
                  c.student);
    SURGEON_CHECK(file_exists((fs::path(c.student) / kPlanFileName).string()),
                  "finetune: --student {}: not a student (no {}; a teacher has no attention plan)", c.student,
                  kPlanFileName);
    SURGEON_CHECK(c.teacher.empty() || is_synth_model_folder(c.teacher),
                  "finetune: --teacher {}: not a synth model folder (needs config.json, text_encoder.safetensors, surgeon.json)",
                  c.teacher);
    const fs::path out = canon(c.out);
    for (const auto& [flag, dir] : {std::pair<std::string, std::string>{"--student", c.student}, {"--teacher", c.teacher}}) {
        if (dir.empty()) continue;
        const fs::path d = canon(dir);
        SURGEON_CHECK(!within(out, d) && !within(d, out), "finetune: --out {} must not be, lie inside or contain {} {}",
                      c.out, flag, dir);
    }
    SURGEON_CHECK(!fs::exists(out) || fs::is_directory(out), "finetune: --out {} exists and is not a folder", c.out);
    const fs::path ck = out / "checkpoint", ck_old = out / "checkpoint.old", cfg_path = out / "finetune_config.json";
    const bool has_run = fs::exists(ck / "progress.json") || fs::exists(ck_old / "progress.json");
    SURGEON_CHECK(c.resume || !has_run,
                  "finetune: --out {} already holds a fine-tuning run (checkpoint/); --resume continues it, or choose another --out",
                  c.out);
    const json settings = c.settings_json();
    if (c.resume && fs::exists(cfg_path)) {
        json before;
        try {
            before = json::parse(read_text_file(cfg_path.string())).at("settings");
        } catch (const json::exception& e) {
            fail("finetune: --resume: {} is not a fine-tuning record ({})", cfg_path.string(), e.what());
        }
        for (const auto& [k, v] : settings.items())
            SURGEON_CHECK(before.contains(k) && before[k] == v,
                          "finetune: --resume with different settings: {} was {}, now {} (use the run's settings or another --out)",
                          k, before.contains(k) ? before[k].dump() : std::string("absent"), v.dump());
    }

    // 2. Models.
    const bool cuda = c.device.is_cuda();
    SynthModel m = load_synth_model(c.student, torch::kCPU, Precision::Float32);
    const AttentionPlan plan = plan_of(m.dit);
    SURGEON_CHECK(plan.num_converted() > 0, "finetune: --student {}: its plan converts no block (a teacher, not a student)",
                  c.student);
    SynthModel teacher;
    if (!c.teacher.empty()) {
        teacher = load_synth_model(c.teacher, torch::kCPU, Precision::Float32);
        check_same_architecture(m, teacher, c.teacher);
        teacher.to(c.device);
        if (cuda) teacher.dit->set_precision(parse_precision(c.dtype), /*cast_weights=*/true);
        teacher.dit->eval();
        teacher.text_encoder->eval();
        for (auto& p : teacher.dit->parameters()) p.set_requires_grad(false);
        for (auto& p : teacher.text_encoder->parameters()) p.set_requires_grad(false);
    }
    const auto names = finetune_trainable_names(m.dit, c.trainable);
    SURGEON_CHECK(!names.empty(), "finetune: trainable '{}' selects no parameter of {}", c.trainable, c.student);

    // 3. The record (the first thing written).
    fs::create_directories(out);
    atomic_write(cfg_path.string(), [&](std::ostream& o) {
        o << json{{"settings", settings}, {"plan", plan.to_json()}, {"trainable_tensors", names.size()}}.dump(1) << "\n";
    });

    m.to(c.device);
    m.dit->set_precision(cuda ? parse_precision(c.dtype) : Precision::Float32, /*cast_weights=*/false);
    m.dit->set_finite_checks(false);  // no host sync per step; the loss check catches divergence
    m.dit->train();
    m.text_encoder->eval();
    for (auto& p : m.text_encoder->parameters()) p.set_requires_grad(false);  // frozen in every mode

    TensorMap dit_sd = state_dict(*m.dit);  // the parameters themselves
    std::vector<torch::Tensor> decay, no_decay;
    std::vector<std::string> flat_names;  // FlatAdamW's order: decay first, then no-decay
    {
        std::vector<std::string> nd;
        for (auto& [n, p] : dit_sd) p.set_requires_grad(false);
        for (const auto& n : names) {
            auto& p = dit_sd.at(n);
            p.set_requires_grad(true);
            if (p.dim() >= 2) {
                decay.push_back(p);
                flat_names.push_back(n);
            } else {
                no_decay.push_back(p);
                nd.push_back(n);
            }
        }
        flat_names.insert(flat_names.end(), nd.begin(), nd.end());
    }
    FinetuneResult res;
    res.model_dir = (out / "model").string();
    res.trainable_tensors = static_cast<int64_t>(names.size());
    for (const auto& n : names) res.trainable_params += dit_sd.at(n).numel();
    int64_t total_params = 0;
    for (const auto& [n, p] : dit_sd) total_params += p.numel();
    std::unique_ptr<FlatAdamW> opt;
    {
        torch::NoGradGuard ng;
        opt = std::make_unique<FlatAdamW>(decay, no_decay, FlatAdamWOptions{0.9, 0.999, 1e-8, c.weight_decay});
    }
    dit_sd = state_dict(*m.dit);  // FlatAdamW re-pointed the trainable parameters at its buffer
    if (c.progress)
        std::fprintf(stderr, "finetune: trainable=%s: %lld tensors, %lld of %lld DiT parameters (%d of %zu blocks converted); text encoder frozen\n",
                     c.trainable.c_str(), static_cast<long long>(res.trainable_tensors),
                     static_cast<long long>(res.trainable_params), static_cast<long long>(total_params),
                     static_cast<int>(plan.num_converted()), plan.blocks.size());

    // 4. Resume.
    std::vector<Row> hist;
    int64_t start = 0;
    double elapsed_before = 0;
    torch::Tensor window_loss, window_tm, window_gn;  // float64 sums on the device
    int64_t window_n = 0;
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(c.device);
    if (c.resume && has_run) {
        const fs::path src = fs::exists(ck / "progress.json") ? ck : ck_old;
        const auto prog = json::parse(read_text_file((src / "progress.json").string()));
        start = prog.at("step").get<int64_t>();
        SURGEON_CHECK(start <= c.steps, "finetune: --resume: the checkpoint is at step {}, beyond steps {}", start, c.steps);
        elapsed_before = prog.value("elapsed_s", 0.0);
        window_n = prog.value("window_n", int64_t{0});
        if (window_n > 0) {
            window_loss = torch::tensor(prog.at("window_loss").get<double>(), f64);
            window_tm = torch::tensor(prog.at("window_teacher").get<double>(), f64);
            window_gn = torch::tensor(prog.at("window_grad_norm").get<double>(), f64);
        }
        auto st = load_safetensors((src / "state.safetensors").string());
        torch::NoGradGuard ng;
        for (auto& [n, p] : dit_sd) {
            auto it = st.find("dit." + n);
            SURGEON_CHECK(it != st.end(), "finetune: --resume: {} has no tensor dit.{}", src.string(), n);
            p.copy_(it->second);
        }
        for (size_t i = 0; i < flat_names.size(); ++i) {
            const std::string k = "opt." + flat_names[i] + ".";
            if (!st.count(k + "exp_avg")) continue;  // checkpoint before the first step
            opt->exp_avg_of(i).copy_(st.at(k + "exp_avg"));
            opt->exp_avg_sq_of(i).copy_(st.at(k + "exp_avg_sq"));
        }
        opt->set_steps(prog.value("optimizer_steps", int64_t{0}));
        auto h = st.at("history").to(torch::kFloat64).contiguous();
        for (int64_t i = 0; i < h.size(0); ++i) {
            Row r{};
            for (int k = 0; k < 6; ++k) r[k] = h[i][k].item<double>();
            hist.push_back(r);
        }
        if (c.progress)
            std::fprintf(stderr, "finetune: resumed from %s at step %lld\n", src.string().c_str(), static_cast<long long>(start));
    }

    auto save_checkpoint = [&](int64_t step, double elapsed) {
        TensorMap st;
        for (const auto& [n, p] : dit_sd) st["dit." + n] = p.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        if (opt->steps() > 0)
            for (size_t i = 0; i < flat_names.size(); ++i) {
                const std::string k = "opt." + flat_names[i] + ".";
                st[k + "exp_avg"] = opt->exp_avg_of(i).to(torch::kCPU).contiguous();
                st[k + "exp_avg_sq"] = opt->exp_avg_sq_of(i).to(torch::kCPU).contiguous();
            }
        auto h = torch::zeros({static_cast<int64_t>(hist.size()), 6}, torch::kFloat64);
        for (size_t i = 0; i < hist.size(); ++i)
            for (int k = 0; k < 6; ++k) h[i][k] = hist[i][k];
        st["history"] = h;
        json prog{{"step", step}, {"elapsed_s", elapsed}, {"optimizer_steps", opt->steps()}, {"window_n", window_n}};
        if (window_n > 0) {
            prog["window_loss"] = window_loss.item<double>();
            prog["window_teacher"] = window_tm.item<double>();
            prog["window_grad_norm"] = window_gn.item<double>();
        }
        atomic_write_dir(ck.string(), [&](const std::string& tmp) {
            save_safetensors((fs::path(tmp) / "state.safetensors").string(), st);
            atomic_write((fs::path(tmp) / "progress.json").string(), [&](std::ostream& o) { o << prog.dump() << "\n"; });
        });
        write_history(out.string(), hist);
    };
    auto export_model = [&]() {
        torch::NoGradGuard ng;
        atomic_write_dir(res.model_dir, [&](const std::string& tmp) {
            save_synth_model(m, tmp, c.save_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32);
        });
    };

    // 5. Training.
    const TrainConfig data = finetune_data_config(c, m);
    Progress bar("finetune", c.steps, c.progress, start);
    const auto t0 = std::chrono::steady_clock::now();
    auto since_start = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    const torch::Tensor pos = m.condition(c.batch);  // position planes [B, 3, T, H, W] or undefined
    const bool use_teacher = c.teacher_weight > 0;
    std::future<TrainBatch> next;
    if (start < c.steps) next = std::async(std::launch::async, make_train_batch, std::cref(data), start);
    for (int64_t step = start; step < c.steps; ++step) {
        TrainBatch b = next.get();
        if (step + 1 < c.steps) next = std::async(std::launch::async, make_train_batch, std::cref(data), step + 1);
        const double lr = lr_at(c, step);
        auto x0 = b.videos.to(c.device, /*non_blocking=*/true);  // [B, 3, T, H, W]
        auto eps = b.eps.to(c.device, /*non_blocking=*/true);    // [B, 3, T, H, W]
        auto sigma = b.sigma.to(c.device).view({-1, 1, 1, 1, 1});
        auto xs = (1 - sigma) * x0 + sigma * eps;
        auto t = sigma.view({-1}) * 1000.0;
        torch::Tensor ctx, v_teacher;
        {
            torch::NoGradGuard ng;
            auto ids = m.tokenizer.encode_batch(b.prompts, m.settings.text_encoder.text_len).to(c.device);
            ctx = m.text_encoder->forward(ids);  // [B, text_len, text_dim]
            if (use_teacher) {
                auto tids = teacher.tokenizer.encode_batch(b.prompts, teacher.settings.text_encoder.text_len).to(c.device);
                v_teacher = teacher.velocity(xs, t, teacher.text_encoder->forward(tids), pos);
            }
        }
        auto v = m.velocity(xs, t, ctx, pos);
        auto loss = torch::mse_loss(v, eps - x0);
        auto objective = loss;
        torch::Tensor tm;
        if (use_teacher) {
            tm = torch::mse_loss(v, v_teacher);
            objective = loss + c.teacher_weight * tm;
        }
        opt->zero_grad();
        objective.backward();
        auto gn = opt->clip_grad_norm(c.grad_clip);
        opt->step(lr);
        {
            torch::NoGradGuard ng;
            auto ld = loss.detach().to(torch::kFloat64), gd = gn.detach().to(ld.device(), torch::kFloat64);
            auto td = use_teacher ? tm.detach().to(torch::kFloat64) : torch::zeros({}, ld.options());
            window_loss = window_n == 0 ? ld : window_loss + ld;
            window_tm = window_n == 0 ? td : window_tm + td;
            window_gn = window_n == 0 ? gd : window_gn + gd;
            ++window_n;
        }
        if ((step + 1) % c.log_every == 0 || step + 1 == c.steps) {
            const double n = static_cast<double>(window_n);
            const double l = window_loss.item<double>() / n;
            SURGEON_CHECK(std::isfinite(l), "finetune: loss became {} in steps {}..{} (lower the learning rate?)", l,
                          step + 2 - window_n, step + 1);
            hist.push_back({static_cast<double>(step + 1), l, window_tm.item<double>() / n, lr,
                            window_gn.item<double>() / n, elapsed_before + since_start()});
            window_n = 0;
        }
        bar.update(step + 1, hist.empty() ? std::string("loss -")
                                          : use_teacher ? fmt::format("loss {:.4f} teacher {:.4f}", hist.back()[1], hist.back()[2])
                                                        : fmt::format("loss {:.4f}", hist.back()[1]));
        const bool timed_out = c.time_limit_s > 0 && since_start() >= c.time_limit_s;
        const bool stop = ((stop_after > 0 && step + 1 >= stop_after) || timed_out) && step + 1 < c.steps;
        if ((step + 1) % c.checkpoint_every == 0 || step + 1 == c.steps || stop) {
            save_checkpoint(step + 1, elapsed_before + since_start());
            export_model();
        }
        if (stop) {
            if (next.valid()) next.wait();
            bar.finish(fmt::format("stopped at step {}", step + 1));
            res.steps_done = step + 1;
            res.final_loss = hist.empty() ? 0.0 : hist.back()[1];
            res.seconds = elapsed_before + since_start();
            return res;
        }
    }
    if (start >= c.steps && !fs::exists(fs::path(res.model_dir) / "surgeon.json")) export_model();
    res.steps_done = c.steps;
    res.finished = true;
    res.final_loss = hist.empty() ? 0.0 : hist.back()[1];
    res.seconds = elapsed_before + since_start();
    bar.finish(fmt::format("final loss {:.4f}", res.final_loss));
    return res;
}

}  // namespace surgeon
