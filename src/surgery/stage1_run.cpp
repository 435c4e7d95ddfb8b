// Stage 1 on a synth teacher: rounds of (record along the teacher's trajectories, U updates of every core),
// checkpointed atomically per round; then held-out errors, phi files and the block-error table.
#include "surgery/stage1_run.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/plot.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/video_io.h"
#include "core/run_lock.h"
#include "core/finite_guard.h"
#include "model/model_io.h"
#include "pipelines/synth_model.h"
#include "surgery/stage2_rate_selection.h"
#include "world/prompt.h"
#include "world/world.h"

namespace surgeon {
using json = nlohmann::json;
namespace fs = std::filesystem;

json DistillRunConfig::settings_json(const json& options_json) const {
    json j = {{"model", model},
              {"options", options_json},
              {"data", data},
              {"prompts", prompts},
              {"heldout_prompts", heldout_prompts},
              {"noise_seeds", noise_seeds},
              {"batch", batch},
              {"updates", updates},
              {"sample_steps", sample_steps},
              {"data_seed", data_seed},
              {"lr", train.lr},
              {"scale_lr_mult", train.scale_lr_mult},
              {"weight_decay", train.weight_decay},
              {"seed", train.seed},
              {"loss", to_string(train.loss)},
              {"queries", train.queries},
              {"rows", train.rows},
              {"heldout_queries", heldout_queries}};
    if (data == "noised") j["sigmas"] = sigmas;
    return j;
}

void DistillRunConfig::validate() const {
    SURGEON_CHECK(data == "trajectories" || data == "noised", "distill: --data must be trajectories or noised, got '{}'",
                  data);
    SURGEON_CHECK(prompts >= 1 && heldout_prompts >= 1, "distill: need at least one training and one held-out prompt, "
                  "got {} and {}", prompts, heldout_prompts);
    SURGEON_CHECK(prompts <= 100000 && heldout_prompts <= 10000, "distill: at most 100000 prompts and 10000 held-out "
                  "prompts, got {} and {}", prompts, heldout_prompts);
    SURGEON_CHECK(noise_seeds >= 1 && noise_seeds <= 1000, "distill: --noise-seeds must be in [1, 1000], got {}",
                  noise_seeds);
    SURGEON_CHECK(batch >= 1 && batch <= 256, "distill: --batch must be in [1, 256], got {}", batch);
    SURGEON_CHECK(updates >= 1 && updates <= 1000000, "distill: --updates must be in [1, 1e6], got {}", updates);
    SURGEON_CHECK(sample_steps >= 0 && sample_steps <= 1000, "distill: --sample-steps must be in [0, 1000], got {}",
                  sample_steps);
    SURGEON_CHECK(!sigmas.empty(), "distill: no sigmas");
    for (double s : sigmas) SURGEON_CHECK(s > 0 && s <= 1, "distill: sigmas must be in (0, 1], got {}", s);
    SURGEON_CHECK(std::isfinite(train.lr) && train.lr > 0 && train.lr < 1, "distill: --lr must be in (0, 1), got {}",
                  train.lr);
    SURGEON_CHECK(std::isfinite(train.weight_decay) && train.weight_decay >= 0,
                  "distill: weight decay must be >= 0, got {}", train.weight_decay);
    SURGEON_CHECK(train.queries >= 0 && train.rows >= 0 && heldout_queries >= 0,
                  "distill: --queries, --rows and the held-out queries must be >= 0");
    SURGEON_CHECK(!(time_limit_s < 0) && std::isfinite(time_limit_s), "distill: --time-limit must be >= 0, got {}",
                  time_limit_s);
    SURGEON_CHECK(world::avoids_eval_world_seeds(world::train_world_seed(data_seed, 0),
                                                 static_cast<uint64_t>(prompts + heldout_prompts)),
                  "distill: data seed {} would draw SynthBench's evaluation clips; use another", data_seed);
}

namespace {

std::string prompt_of(uint64_t data_seed, int64_t p) {
    return world::prompt(world::sample_spec(world::train_world_seed(data_seed, static_cast<uint64_t>(p))));
}

// Trajectories [first, first + count): trajectory n samples prompt n / noise_seeds with its own noise seed, and every
// forward (cond + uncond rows) of every step is recorded.
Recorded record_trajectories(SynthModel& m, const TokenGrid& grid, const DistillRunConfig& c, int64_t first,
                             int64_t count, int64_t prompt_offset, int64_t per_prompt) {
    AttentionRecorder rec(grid, {}, torch::kBFloat16, m.dit->device());
    std::vector<std::string> prompts;
    std::vector<uint64_t> seeds;
    for (int64_t n = first; n < first + count; ++n) {
        prompts.push_back(prompt_of(c.data_seed, prompt_offset + n / per_prompt));
        seeds.push_back(c.data_seed * 1000003ull + static_cast<uint64_t>(prompt_offset * c.noise_seeds + n));
    }
    auto opts = m.settings.sampling;
    if (c.sample_steps > 0) opts.steps = c.sample_steps;
    opts.progress = false;
    opts.tap = &rec.tap();
    m.generate(prompts, seeds, opts);
    return rec.samples();
}

// Clips [first, first + count) of the world, noised at every sigma (cond prompt only).
Recorded record_noised(SynthModel& m, const TokenGrid& grid, const DistillRunConfig& c, int64_t first, int64_t count) {
    torch::NoGradGuard ng;
    AttentionRecorder rec(grid, {}, torch::kBFloat16, m.dit->device());
    for (int64_t n = first; n < first + count; ++n) {
        const auto spec = world::sample_spec(world::train_world_seed(c.data_seed, static_cast<uint64_t>(n)));
        const auto x0 = world::render(spec, m.settings.size).unsqueeze(0).to(m.dit->device());
        const auto ctx = m.encode({world::prompt(spec)});
        auto gen = at::make_generator<at::CPUGeneratorImpl>(c.data_seed * 1000003ull + static_cast<uint64_t>(n));
        for (double s : c.sigmas) {
            const auto eps = at::randn(x0.sizes(), gen, torch::kFloat32).to(x0.device());
            m.velocity((1 - s) * x0 + s * eps, torch::full({1}, 1000.0 * s, x0.options()), ctx, {}, &rec.tap());
        }
    }
    return rec.samples();
}

// Training and evaluation dtype: bf16 on CUDA (as recorded), float32 on the CPU (bf16 math is slow there).
AttentionSample compute_copy(const AttentionSample& s) {
    if (s.q.is_cuda()) return s;
    return {s.q.to(torch::kFloat32), s.k.to(torch::kFloat32), s.v.to(torch::kFloat32), s.y.to(torch::kFloat32), s.grid};
}
Recorded compute_copy(const Recorded& r) {
    Recorded out;
    for (const auto& [b, v] : r)
        for (const auto& s : v) out[b].push_back(compute_copy(s));
    return out;
}

void write_phi(const StageOneTrainer& t, const std::vector<std::string>& names, const std::vector<int64_t>& option_of,
               const std::string& out) {
    for (size_t bi = 0; bi < t.blocks().size(); ++bi) {
        for (size_t o = 0; o < option_of.size(); ++o) {
            TensorMap phi;
            for (const auto& [n, v] : state_dict(*t.core(bi, o))) phi[n] = v.detach().to(torch::kCPU, torch::kFloat32);
            if (phi.empty()) continue;  // elu1/relu linear maps have no parameters
            const std::string dir = fmt::format("{}/phi/{}", out, names[option_of[o]]);
            fs::create_directories(dir);
            save_safetensors(fmt::format("{}/block{}.safetensors", dir, t.blocks()[bi]), phi);
        }
    }
}

BlockErrorTable make_table(const std::vector<std::string>& names, const std::vector<PlanEntry>& entries,
                           const std::vector<int64_t>& option_of, const std::vector<std::vector<double>>& trained) {
    BlockErrorTable table;
    table.names = names;
    table.options = entries;
    for (const auto& row_trained : trained) {
        std::vector<double> row(entries.size(), 0.0);  // softmax options: error 0
        for (size_t o = 0; o < option_of.size(); ++o) row[option_of[o]] = row_trained[o];
        table.errors.push_back(row);
    }
    return table;
}

void write_heatmap(const BlockErrorTable& t, const std::string& path, const std::string& title) {
    std::vector<std::string> rows;
    for (int64_t b = 0; b < t.num_blocks(); ++b) rows.push_back(fmt::format("block {}", b));
    HeatmapOptions o;
    o.title = title;
    o.x_label = "option";
    o.y_label = "block";
    write_png(path, render_heatmap(t.errors, rows, t.names, o));
}

// Every trained option's entry (normalised for the head dim, checked on the grid) and its index in the table.
struct TrainedOptions {
    std::vector<PlanEntry> entries;  // trained options only
    std::vector<int64_t> option_of;  // trained option index -> table option index
};
TrainedOptions trained_options(Stage1Run& run, const WanConfig& cfg, const TokenGrid& grid, const std::string& source) {
    TrainedOptions t;
    for (size_t o = 0; o < run.entries.size(); ++o) {
        run.entries[o] = run.entries[o].normalized(cfg.head_dim());
        validate_entry(run.entries[o], cfg.head_dim(), &grid, fmt::format("{}: option '{}'", source, run.names[o]));
        if (run.entries[o].kind == AttentionKind::Softmax) continue;
        t.option_of.push_back(static_cast<int64_t>(o));
        t.entries.push_back(run.entries[o]);
    }
    SURGEON_CHECK(!t.entries.empty(), "{}: no option to distil (only softmax)", source);
    return t;
}

// One round: U updates of every core, each on one recorded forward per block; the mean loss per option [options].
torch::Tensor train_round(StageOneTrainer& trainer, const Recorded& rec, const DistillRunConfig& c, int64_t round,
                          Progress& bar) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.train.seed * 7919ull + static_cast<uint64_t>(round));
    const auto& blocks = trainer.blocks();
    const int64_t forwards = static_cast<int64_t>(rec.at(blocks.front()).size());
    if (round == 0) {
        std::map<int64_t, AttentionSample> first_fw;
        for (int64_t b : blocks) first_fw[b] = compute_copy(rec.at(b)[static_cast<size_t>(forwards / 2)]);
        trainer.calibrate(first_fw);
    }
    torch::Tensor loss_sum;
    for (int64_t u = 0; u < c.updates; ++u) {
        const int64_t f = torch::randint(forwards, {1}, gen).item<int64_t>();
        std::map<int64_t, AttentionSample> sample;
        for (int64_t b : blocks) sample[b] = compute_copy(rec.at(b)[static_cast<size_t>(f)]);
        auto l = trainer.update(sample, gen);  // [blocks, options]
        loss_sum = loss_sum.defined() ? loss_sum + l : l;
        if (u % 10 == 9) bar.update(round, fmt::format("update {}/{}", u + 1, c.updates));
    }
    return (loss_sum / static_cast<double>(c.updates)).mean(0).to(torch::kCPU, torch::kFloat64);  // [options]
}

// Held-out errors of the trained cores and of fresh ones (same seeds, calibrated on the held-out data: stage 1 vs
// none), then the phi files, both tables, the heat map and loss.csv.
void write_stage1_outputs(StageOneTrainer& trainer, const Stage1Run& run, const TrainedOptions& t,
                          const Stage1Source& src, const DistillRunConfig& c) {
    const auto& cfg = src.dit->config();
    auto held = compute_copy(src.record_heldout());
    const auto errors = trainer.heldout_l1(held, c.heldout_queries);
    StageOneTrainer fresh(trainer.blocks(), t.entries, cfg.num_heads, cfg.head_dim(), c.train, c.device);
    std::map<int64_t, AttentionSample> first_held;
    for (int64_t b : trainer.blocks()) first_held[b] = held.at(b)[held.at(b).size() / 2];
    fresh.calibrate(first_held);
    const auto errors_init = fresh.heldout_l1(held, c.heldout_queries);

    write_phi(trainer, run.names, t.option_of, c.out);
    const auto table = make_table(run.names, run.entries, t.option_of, errors);
    make_table(run.names, run.entries, t.option_of, errors_init).save(c.out + "/block_errors_init.json");
    table.save(c.out + "/block_errors.json");
    write_heatmap(table, c.out + "/errors.png", "stage 1: held-out |y - y_hat| per block and option");
    atomic_write(c.out + "/loss.csv", [&](std::ostream& os) {
        os << "round";
        for (auto o : t.option_of) os << "," << run.names[o];
        os << "\n";
        for (size_t i = 0; i < run.progress["loss"].size(); ++i) {
            os << i;
            for (const auto& v : run.progress["loss"][i]) os << "," << v.get<double>();
            os << "\n";
        }
    });
}

}  // namespace

Stage1Run open_stage1(const DistillRunConfig& c, const json& source_settings) {
    c.validate();
    json oj;
    try {
        oj = json::parse(read_text_file(c.options));
    } catch (const json::exception& e) {
        fail("{}: invalid JSON ({})", c.options, e.what());
    }
    SURGEON_CHECK(oj.is_object() && oj.contains("options"), "{}: expected an object with 'options'", c.options);
    Stage1Run run;
    parse_table_options(oj["options"], c.options, run.names, run.entries);
    run.settings = c.settings_json(oj);
    for (auto it = source_settings.begin(); it != source_settings.end(); ++it) run.settings[it.key()] = it.value();
    const std::string ckpt = c.out + "/checkpoint";
    run.progress = {{"settings", run.settings}, {"rounds_done", 0}, {"loss", json::array()}};
    if (file_exists(ckpt + "/progress.json")) {
        SURGEON_CHECK(c.resume, "{} holds a distillation run; --resume continues it (or choose another --out)", c.out);
        json old = json::parse(read_text_file(ckpt + "/progress.json"));
        for (auto it = run.settings.begin(); it != run.settings.end(); ++it)
            SURGEON_CHECK(old["settings"].contains(it.key()) && old["settings"][it.key()] == it.value(),
                          "--resume: setting '{}' differs from the run in {} (was {}, now {})", it.key(), c.out,
                          old["settings"].contains(it.key()) ? old["settings"][it.key()].dump() : "absent",
                          it.value().dump());
        SURGEON_CHECK(old["rounds_done"].is_number_integer() && old["rounds_done"].get<int64_t>() >= 0,
                      "{}/progress.json: rounds_done must be an integer >= 0", ckpt);
        run.progress = old;
    } else {
        SURGEON_CHECK(!c.resume, "--resume: no run in {} (no checkpoint/progress.json)", c.out);
    }
    return run;
}

DistillRunResult run_stage1(const DistillRunConfig& c, Stage1Run run, const Stage1Source& src,
                            int64_t stop_after_rounds) {
    const auto start = std::chrono::steady_clock::now();
    const auto& cfg = src.dit->config();
    const TrainedOptions t = trained_options(run, cfg, src.grid, c.options);
    std::vector<int64_t> blocks;
    for (int64_t b = 0; b < cfg.num_layers; ++b) blocks.push_back(b);
    StageOneTrainer trainer(blocks, t.entries, cfg.num_heads, cfg.head_dim(), c.train, c.device);
    const std::string ckpt = c.out + "/checkpoint";
    int64_t rounds_done = run.progress["rounds_done"].get<int64_t>();
    if (rounds_done > 0) trainer.load(ckpt);

    DistillRunResult r;
    r.rounds_total = (src.items + c.batch - 1) / c.batch;
    SURGEON_CHECK(rounds_done <= r.rounds_total, "{}/progress.json: {} rounds done, but the run has {}", ckpt,
                  rounds_done, r.rounds_total);
    fs::create_directories(c.out);
    const RunLock lock(c.out, "distill");  // one writer per run folder
    Progress bar("distill", r.rounds_total, c.progress, rounds_done);
    const int64_t at_start = rounds_done;
    for (; rounds_done < r.rounds_total; ++rounds_done) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const bool stop = (c.time_limit_s > 0 && elapsed >= c.time_limit_s) ||
                          (stop_after_rounds > 0 && rounds_done - at_start >= stop_after_rounds);
        if (stop && rounds_done > at_start) {
            bar.finish("stopped; --resume continues");
            r.rounds_done = rounds_done;
            return r;
        }
        const int64_t first = rounds_done * c.batch, count = std::min(c.batch, src.items - first);
        bar.update(rounds_done, "recording the teacher");
        const auto mean = train_round(trainer, src.record(first, count), c, rounds_done, bar);  // [options]
        run.progress["loss"].push_back(std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel()));
        run.progress["rounds_done"] = rounds_done + 1;
        check_state_finite(std::vector<torch::Tensor>{mean}, "distill", rounds_done + 1, "the round's loss");  // keeps the last checkpoint
        atomic_write_dir(ckpt, [&](const std::string& tmp) {
            trainer.save(tmp);
            atomic_write(tmp + "/progress.json", [&](std::ostream& os) { os << run.progress.dump(1) << "\n"; });
        });
        bar.update(rounds_done + 1, fmt::format("loss {:.4g}", mean.mean().item<double>()));
    }
    bar.finish();
    r.rounds_done = rounds_done;
    write_stage1_outputs(trainer, run, t, src, c);
    r.finished = true;
    return r;
}

DistillRunResult run_distill(const DistillRunConfig& c, int64_t stop_after_rounds) {
    Stage1Run run = open_stage1(c, json::object());
    auto m = std::make_shared<SynthModel>(load_synth_model(c.model, c.device));
    m->dit->eval();
    m->text_encoder->eval();
    const auto& size = m->settings.size;
    Stage1Source src;
    src.dit = m->dit;
    src.grid = token_grid(m->dit->config(), size.frames, size.height, size.width);
    const bool traj = c.data == "trajectories";
    src.items = traj ? c.prompts * c.noise_seeds : c.prompts;
    const TokenGrid grid = src.grid;
    src.record = [m, grid, &c, traj](int64_t first, int64_t count) {
        return traj ? record_trajectories(*m, grid, c, first, count, 0, c.noise_seeds)
                    : record_noised(*m, grid, c, first, count);
    };
    src.record_heldout = [m, grid, &c, traj]() {
        return traj ? record_trajectories(*m, grid, c, 0, c.heldout_prompts, c.prompts, 1)
                    : record_noised(*m, grid, c, c.prompts, c.heldout_prompts);
    };
    return run_stage1(c, std::move(run), src, stop_after_rounds);
}

}  // namespace surgeon
