// Stage 3 of the surgery: fine-tuning a student on the world's flow-matching loss (see stage3_finetune.h).
#include "surgery/stage3_finetune.h"

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
#include "core/run_lock.h"
#include "core/finite_guard.h"
#include "model/model_io.h"
#include "pipelines/flat_adamw.h"
#include "pipelines/train_losses.h"
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

// ------------------------------------------------------------------------------------------------ the parts
namespace {

// Where a run lives and whether it has one; checks --out against the inputs and, on --resume, the settings.
struct RunFolder {
    fs::path out, ck, ck_old, cfg_path;
    bool has_run = false;
};

RunFolder check_run_folder(const FinetuneConfig& c, const std::vector<std::pair<std::string, std::string>>& inputs) {
    RunFolder f;
    f.out = canon(c.out);
    for (const auto& [flag, dir] : inputs) {
        if (dir.empty()) continue;
        const fs::path d = canon(dir);
        SURGEON_CHECK(!within(f.out, d) && !within(d, f.out), "finetune: --out {} must not be, lie inside or contain {} {}",
                      c.out, flag, dir);
    }
    SURGEON_CHECK(!fs::exists(f.out) || fs::is_directory(f.out), "finetune: --out {} exists and is not a folder", c.out);
    f.ck = f.out / "checkpoint";
    f.ck_old = f.out / "checkpoint.old";
    f.cfg_path = f.out / "finetune_config.json";
    f.has_run = fs::exists(f.ck / "progress.json") || fs::exists(f.ck_old / "progress.json");
    SURGEON_CHECK(c.resume || !f.has_run,
                  "finetune: --out {} already holds a fine-tuning run (checkpoint/); --resume continues it, or choose another --out",
                  c.out);
    const json settings = c.settings_json();
    if (c.resume && fs::exists(f.cfg_path)) {
        json before;
        try {
            before = json::parse(read_text_file(f.cfg_path.string())).at("settings");
        } catch (const json::exception& e) {
            fail("finetune: --resume: {} is not a fine-tuning record ({})", f.cfg_path.string(), e.what());
        }
        for (const auto& [k, v] : settings.items())
            SURGEON_CHECK(before.contains(k) && before[k] == v,
                          "finetune: --resume with different settings: {} was {}, now {} (use the run's settings or another --out)",
                          k, before.contains(k) ? before[k].dump() : std::string("absent"), v.dump());
    }
    return f;
}

// The trainable parameters in FlatAdamW (decay: rank >= 2 first, then the rest), by name in that order.
struct Trainables {
    TensorMap dit_sd;                    // every DiT parameter (re-pointed into the optimiser's buffer)
    std::vector<std::string> flat_names;
    std::unique_ptr<FlatAdamW> opt;
    int64_t params = 0, total_params = 0;
};

Trainables make_trainables(WanModel& dit, const std::vector<std::string>& names, double weight_decay) {
    Trainables t;
    t.dit_sd = state_dict(*dit);  // the parameters themselves
    std::vector<torch::Tensor> decay, no_decay;
    std::vector<std::string> nd;
    for (auto& [n, p] : t.dit_sd) p.set_requires_grad(false);
    for (const auto& n : names) {
        auto& p = t.dit_sd.at(n);
        p.set_requires_grad(true);
        if (p.dim() >= 2) {
            decay.push_back(p);
            t.flat_names.push_back(n);
        } else {
            no_decay.push_back(p);
            nd.push_back(n);
        }
    }
    t.flat_names.insert(t.flat_names.end(), nd.begin(), nd.end());
    for (const auto& n : names) t.params += t.dit_sd.at(n).numel();
    for (const auto& [n, p] : t.dit_sd) t.total_params += p.numel();
    {
        torch::NoGradGuard ng;
        t.opt = std::make_unique<FlatAdamW>(decay, no_decay, FlatAdamWOptions{0.9, 0.999, 1e-8, weight_decay});
    }
    t.dit_sd = state_dict(*dit);  // FlatAdamW re-pointed the trainable parameters at its buffer
    return t;
}

// Loss, teacher MSE and gradient norm summed on the device over a log window (no host sync per step).
struct Window {
    torch::Tensor loss, teacher, grad_norm;  // float64 sums on the device
    int64_t n = 0;
    void add(const torch::Tensor& l, const torch::Tensor& tm, const torch::Tensor& gn) {
        torch::NoGradGuard ng;
        auto ld = l.detach().to(torch::kFloat64), gd = gn.detach().to(ld.device(), torch::kFloat64);
        auto td = tm.defined() ? tm.detach().to(torch::kFloat64) : torch::zeros({}, ld.options());
        loss = n == 0 ? ld : loss + ld;
        teacher = n == 0 ? td : teacher + td;
        grad_norm = n == 0 ? gd : grad_norm + gd;
        ++n;
    }
};

// The run's state between steps: history, the open log window, the time trained before this call.
struct RunState {
    std::vector<Row> hist;
    Window window;
    int64_t start = 0;
    double elapsed_before = 0;
};

void resume_run(const FinetuneConfig& c, const RunFolder& f, Trainables& t, RunState& s) {
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(c.device);
    const fs::path src = fs::exists(f.ck / "progress.json") ? f.ck : f.ck_old;
    const auto prog = json::parse(read_text_file((src / "progress.json").string()));
    s.start = prog.at("step").get<int64_t>();
    SURGEON_CHECK(s.start <= c.steps, "finetune: --resume: the checkpoint is at step {}, beyond steps {}", s.start, c.steps);
    s.elapsed_before = prog.value("elapsed_s", 0.0);
    s.window.n = prog.value("window_n", int64_t{0});
    if (s.window.n > 0) {
        s.window.loss = torch::tensor(prog.at("window_loss").get<double>(), f64);
        s.window.teacher = torch::tensor(prog.at("window_teacher").get<double>(), f64);
        s.window.grad_norm = torch::tensor(prog.at("window_grad_norm").get<double>(), f64);
    }
    auto st = load_safetensors((src / "state.safetensors").string());
    torch::NoGradGuard ng;
    for (auto& [n, p] : t.dit_sd) {
        auto it = st.find("dit." + n);
        SURGEON_CHECK(it != st.end(), "finetune: --resume: {} has no tensor dit.{}", src.string(), n);
        p.copy_(it->second);
    }
    for (size_t i = 0; i < t.flat_names.size(); ++i) {
        const std::string k = "opt." + t.flat_names[i] + ".";
        if (!st.count(k + "exp_avg")) continue;  // checkpoint before the first step
        t.opt->exp_avg_of(i).copy_(st.at(k + "exp_avg"));
        t.opt->exp_avg_sq_of(i).copy_(st.at(k + "exp_avg_sq"));
    }
    t.opt->set_steps(prog.value("optimizer_steps", int64_t{0}));
    auto h = st.at("history").to(torch::kFloat64).contiguous();
    for (int64_t i = 0; i < h.size(0); ++i) {
        Row r{};
        for (int k = 0; k < 6; ++k) r[k] = h[i][k].item<double>();
        s.hist.push_back(r);
    }
    if (c.progress)
        std::fprintf(stderr, "finetune: resumed from %s at step %lld\n", src.string().c_str(), static_cast<long long>(s.start));
}

void save_run(const RunFolder& f, int64_t step, double elapsed, const Trainables& t, const RunState& s) {
    TensorMap st;
    for (const auto& [n, p] : t.dit_sd) st["dit." + n] = p.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    if (t.opt->steps() > 0)
        for (size_t i = 0; i < t.flat_names.size(); ++i) {
            const std::string k = "opt." + t.flat_names[i] + ".";
            st[k + "exp_avg"] = t.opt->exp_avg_of(i).to(torch::kCPU).contiguous();
            st[k + "exp_avg_sq"] = t.opt->exp_avg_sq_of(i).to(torch::kCPU).contiguous();
        }
    auto h = torch::zeros({static_cast<int64_t>(s.hist.size()), 6}, torch::kFloat64);
    for (size_t i = 0; i < s.hist.size(); ++i)
        for (int k = 0; k < 6; ++k) h[i][k] = s.hist[i][k];
    st["history"] = h;
    const Window& w = s.window;
    json prog{{"step", step}, {"elapsed_s", elapsed}, {"optimizer_steps", t.opt->steps()}, {"window_n", w.n}};
    if (w.n > 0) {
        prog["window_loss"] = w.loss.item<double>();
        prog["window_teacher"] = w.teacher.item<double>();
        prog["window_grad_norm"] = w.grad_norm.item<double>();
    }
    check_state_finite(st, "finetune", step);  // a diverged state never replaces the last good checkpoint
    atomic_write_dir(f.ck.string(), [&](const std::string& tmp) {
        save_safetensors((fs::path(tmp) / "state.safetensors").string(), st);
        atomic_write((fs::path(tmp) / "progress.json").string(), [&](std::ostream& o) { o << prog.dump() << "\n"; });
    });
    write_history(f.out.string(), s.hist);
}

// One optimiser step: the student's flow-matching term (+ the teacher's velocity term), backward, clip, AdamW.
void train_step(const FinetuneConfig& c, const Stage3Hooks& h, Trainables& t, Window& w, const TrainBatch& b,
                double lr) {
    const FlowMatchingTerm fm = h.forward(b);
    auto objective = fm.loss;
    torch::Tensor tm;
    if (c.teacher_weight > 0) {
        torch::Tensor v_teacher;
        {
            torch::NoGradGuard ng;
            v_teacher = h.teacher(b, fm);
        }
        tm = torch::mse_loss(fm.v, v_teacher);
        objective = fm.loss + c.teacher_weight * tm;
    }
    t.opt->zero_grad();
    objective.backward();
    auto gn = t.opt->clip_grad_norm(c.grad_clip);
    t.opt->step(lr);
    w.add(fm.loss, tm, gn);
}

// Closes the log window at log steps (a history row; the loss must be finite); the progress line's text.
std::string log_step(const FinetuneConfig& c, RunState& s, int64_t step, double lr, double elapsed) {
    Window& w = s.window;
    if ((step + 1) % c.log_every == 0 || step + 1 == c.steps) {
        const double n = static_cast<double>(w.n);
        const double l = w.loss.item<double>() / n;
        SURGEON_CHECK(std::isfinite(l), "finetune: loss became {} in steps {}..{} (lower the learning rate?)", l,
                      step + 2 - w.n, step + 1);
        s.hist.push_back({static_cast<double>(step + 1), l, w.teacher.item<double>() / n, lr,
                          w.grad_norm.item<double>() / n, elapsed});
        w.n = 0;
    }
    if (s.hist.empty()) return "loss -";
    return c.teacher_weight > 0 ? fmt::format("loss {:.4f} teacher {:.4f}", s.hist.back()[1], s.hist.back()[2])
                                : fmt::format("loss {:.4f}", s.hist.back()[1]);
}

}  // namespace

// ------------------------------------------------------------------------------------------------ the run
FinetuneResult run_stage3(const FinetuneConfig& c, const Stage3Hooks& h, int64_t stop_after) {
    c.validate();
    const RunFolder f = check_run_folder(c, {{"--student", c.student}, {"--teacher", c.teacher}});
    WanModel dit = h.dit;
    const AttentionPlan plan = plan_of(dit);
    SURGEON_CHECK(plan.num_converted() > 0, "finetune: --student {}: its plan converts no block (a teacher, not a student)",
                  c.student);
    const auto names = finetune_trainable_names(dit, c.trainable);
    SURGEON_CHECK(!names.empty(), "finetune: trainable '{}' selects no parameter of {}", c.trainable, c.student);

    // The record (the first thing written).
    fs::create_directories(f.out);
    const RunLock lock(f.out.string(), "finetune");  // one writer per run folder
    atomic_write(f.cfg_path.string(), [&](std::ostream& o) {
        o << json{{"settings", c.settings_json()}, {"plan", plan.to_json()}, {"trainable_tensors", names.size()}}.dump(1)
          << "\n";
    });
    if (h.prepare) h.prepare();
    Trainables t = make_trainables(dit, names, c.weight_decay);
    FinetuneResult res;
    res.model_dir = (f.out / "model").string();
    res.trainable_tensors = static_cast<int64_t>(names.size());
    res.trainable_params = t.params;
    if (c.progress)
        std::fprintf(stderr, "finetune: trainable=%s: %lld tensors, %lld of %lld DiT parameters (%d of %zu blocks converted); text encoder frozen\n",
                     c.trainable.c_str(), static_cast<long long>(res.trainable_tensors),
                     static_cast<long long>(res.trainable_params), static_cast<long long>(t.total_params),
                     static_cast<int>(plan.num_converted()), plan.blocks.size());
    RunState s;
    if (c.resume && f.has_run) resume_run(c, f, t, s);
    auto export_model = [&]() {
        torch::NoGradGuard ng;
        atomic_write_dir(res.model_dir, [&](const std::string& tmp) { h.export_model(tmp); });
    };

    Progress bar("finetune", c.steps, c.progress, s.start);
    const auto t0 = std::chrono::steady_clock::now();
    auto since_start = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    std::future<TrainBatch> next;
    if (s.start < c.steps) next = std::async(std::launch::async, h.batch, s.start);
    for (int64_t step = s.start; step < c.steps; ++step) {
        TrainBatch b = next.get();
        if (step + 1 < c.steps) next = std::async(std::launch::async, h.batch, step + 1);
        const double lr = lr_at(c, step);
        train_step(c, h, t, s.window, b, lr);
        bar.update(step + 1, log_step(c, s, step, lr, s.elapsed_before + since_start()));
        const bool timed_out = c.time_limit_s > 0 && since_start() >= c.time_limit_s;
        const bool stop = ((stop_after > 0 && step + 1 >= stop_after) || timed_out) && step + 1 < c.steps;
        if ((step + 1) % c.checkpoint_every == 0 || step + 1 == c.steps || stop) {
            save_run(f, step + 1, s.elapsed_before + since_start(), t, s);
            export_model();
        }
        if (stop) {
            if (next.valid()) next.wait();
            bar.finish(fmt::format("stopped at step {}", step + 1));
            res.steps_done = step + 1;
            res.final_loss = s.hist.empty() ? 0.0 : s.hist.back()[1];
            res.seconds = s.elapsed_before + since_start();
            return res;
        }
    }
    if (s.start >= c.steps && !fs::exists(fs::path(res.model_dir) / h.export_marker)) export_model();
    res.steps_done = c.steps;
    res.finished = true;
    res.final_loss = s.hist.empty() ? 0.0 : s.hist.back()[1];
    res.seconds = s.elapsed_before + since_start();
    bar.finish(fmt::format("final loss {:.4f}", res.final_loss));
    return res;
}

// ------------------------------------------------------------------------------------------------ synth teachers
namespace {

// The synth student (and teacher) of a run, loaded and checked before anything is written.
struct SynthPair {
    SynthModel student, teacher;
};

SynthPair load_synth_pair(const FinetuneConfig& c) {
    SURGEON_CHECK(is_synth_model_folder(c.student),
                  "finetune: --student {}: not a synth model folder (needs config.json, text_encoder.safetensors, surgeon.json)",
                  c.student);
    SURGEON_CHECK(file_exists((fs::path(c.student) / kPlanFileName).string()),
                  "finetune: --student {}: not a student (no {}; a teacher has no attention plan)", c.student,
                  kPlanFileName);
    SURGEON_CHECK(c.teacher.empty() || is_synth_model_folder(c.teacher),
                  "finetune: --teacher {}: not a synth model folder (needs config.json, text_encoder.safetensors, surgeon.json)",
                  c.teacher);
    check_run_folder(c, {{"--student", c.student}, {"--teacher", c.teacher}});  // before any model is loaded
    SynthPair p;
    p.student = load_synth_model(c.student, torch::kCPU, Precision::Float32);
    if (!c.teacher.empty()) {
        p.teacher = load_synth_model(c.teacher, torch::kCPU, Precision::Float32);
        check_same_architecture(p.student, p.teacher, c.teacher);
        p.teacher.to(c.device);
        if (c.device.is_cuda()) p.teacher.dit->set_precision(parse_precision(c.dtype), /*cast_weights=*/true);
        p.teacher.dit->eval();
        p.teacher.text_encoder->eval();
        for (auto& q : p.teacher.dit->parameters()) q.set_requires_grad(false);
        for (auto& q : p.teacher.text_encoder->parameters()) q.set_requires_grad(false);
    }
    return p;
}

}  // namespace

FinetuneResult run_finetune(const FinetuneConfig& c, int64_t stop_after) {
    c.validate();
    auto p = std::make_shared<SynthPair>(load_synth_pair(c));
    SynthModel& m = p->student;
    auto data = std::make_shared<TrainConfig>(finetune_data_config(c, m));
    auto pos = std::make_shared<torch::Tensor>();
    Stage3Hooks h;
    h.dit = m.dit;
    h.prepare = [p, pos, &c]() {
        SynthModel& m = p->student;
        m.to(c.device);
        m.dit->set_precision(c.device.is_cuda() ? parse_precision(c.dtype) : Precision::Float32, /*cast_weights=*/false);
        m.dit->set_finite_checks(false);  // no host sync per step; the loss check catches divergence
        m.dit->train();
        m.text_encoder->eval();
        for (auto& q : m.text_encoder->parameters()) q.set_requires_grad(false);  // frozen in every mode
        *pos = m.condition(c.batch);  // position planes [B, 3, T, H, W] or undefined
    };
    h.batch = [data](int64_t step) { return make_train_batch(*data, step); };
    h.forward = [p, data, pos, &c](const TrainBatch& b) { return flow_matching_term(p->student, *data, b, *pos, c.device); };
    h.teacher = [p, pos](const TrainBatch& b, const FlowMatchingTerm& fm) {
        SynthModel& t = p->teacher;
        auto ids = t.tokenizer.encode_batch(b.prompts, t.settings.text_encoder.text_len).to(fm.xs.device());
        return t.velocity(fm.xs, fm.sigma.view({-1}) * 1000.0, t.text_encoder->forward(ids), *pos);
    };
    h.export_model = [p, &c](const std::string& dir) {
        save_synth_model(p->student, dir, c.save_dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32);
    };
    h.export_marker = "surgeon.json";
    return run_stage3(c, h, stop_after);
}

}  // namespace surgeon
