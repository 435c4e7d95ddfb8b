// `surgeon surgery`: stages 1 -> 2 -> student -> 3 -> report, each skipped when its output exists; one run for synth
// and Wan teachers (a Teacher says how each kind records, fine-tunes, exports and samples).
#include "surgery/surgery.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "attention/cost_model.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/plot.h"
#include "core/video_io.h"
#include "model/model_io.h"
#include "surgery/stage1_run.h"
#include "surgery/stage3_finetune.h"
#include "surgery/student.h"
#include "pipelines/synthbench_eval.h"
#include "pipelines/wan_t2v.h"
#include "surgery/attention_swap.h"
#include "surgery/stage2_rate_selection.h"
#include "surgery/wan_teacher.h"
#include "world/fidelity.h"

namespace surgeon {
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Preset {
    // stage 1 (rows: CFG rows per update, 0 = both; heldout_queries: 0 = every query)
    int64_t prompts, heldout, batch, updates, sample_steps, queries, rows, heldout_queries;
    // stage 3 (teacher_weight: + that x ||v_student - v_teacher||^2, the teacher's velocity on the same clips)
    int64_t finetune_steps, finetune_batch;
    double finetune_lr, teacher_weight;
    // report: SynthBench prompts for teacher and student, sampler steps (0 = the teacher's), curve points
    int64_t eval_samples, eval_steps, eval_batch, curve_samples, curve_finetune_steps;
    std::vector<double> curve;
};

Preset preset_of(const SurgeryConfig& c) {
    Preset p;
    if (c.preset == "quick")  // the 2-core CPU in minutes: a few short trajectories, query subsets, a short report
        p = {2, 1, 1, 10, 4, 256, 1, 512, 6, 1, 5e-5, 1.0, 4, 10, 4, 0, 0, {}};
    else  // full: one GPU in minutes
        p = {64, 4, 8, 40, 0, 0, 0, 0, 1000, 8, 1e-4, 1.0, 64, 0, 16, 16, 100, {0.15, 0.25, 0.5, 0.75}};
    if (c.distill_prompts > 0) p.prompts = c.distill_prompts;
    if (c.distill_updates > 0) p.updates = c.distill_updates;
    if (c.finetune_steps >= 0) p.finetune_steps = c.finetune_steps;
    if (c.eval_samples > 0) p.eval_samples = c.eval_samples;
    if (!c.curve.empty()) p.curve = c.curve;
    return p;
}

// Stage-1 options. Temporal chunks (C4: T_c = 4 frames; C2o1: T_c = 2 with T_o = 1 frame of overlap) distil best
// per FLOP on the bundled teacher and make the knapsack's 50% student keep 99% of the teacher's score on the report's
// 64 prompts, against 95.7% from hybrid and linear options alone (docs/BENCHMARKS.md). The quick preset keeps to
// R2, R4 and linear: chunked cores train on every query (no query subsets), which made its stage 1 several times
// slower on the CPU, and with its 20 updates the chunked plan kept less of the teacher (77.8% on its 4 prompts vs
// 90.2%). R8 distils no better than linear at 5x its FLOPs.
constexpr const char* kQuickOptions = R"({"options": [
  {"name": "softmax", "kind": "softmax"},
  {"name": "R2", "kind": "hybrid", "rate": 2},
  {"name": "R4", "kind": "hybrid", "rate": 4},
  {"name": "linear", "kind": "linear"}]})";
constexpr const char* kDefaultOptions = R"({"options": [
  {"name": "softmax", "kind": "softmax"},
  {"name": "R2", "kind": "hybrid", "rate": 2},
  {"name": "R4", "kind": "hybrid", "rate": 4},
  {"name": "R8", "kind": "hybrid", "rate": 8},
  {"name": "C4", "kind": "chunked", "chunk": 4, "overlap": 0},
  {"name": "C2o1", "kind": "chunked", "chunk": 2, "overlap": 1},
  {"name": "linear", "kind": "linear"}]})";


double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A plan from one option per block.
AttentionPlan plan_from_choice(const BlockErrorTable& t, const std::vector<int>& choice) {
    AttentionPlan p;
    for (int c : choice) p.blocks.push_back(t.options[static_cast<size_t>(c)]);
    return p;
}

// Samples of a model for the report: videos [3, T, H, W] in [-1, 1] on the same prompts and noise for teacher and
// student, and SynthBench's report where the teacher is a synth model.
struct Evaluation {
    std::vector<torch::Tensor> videos;
    std::optional<json> synthbench;  // score, metrics, sampling, ...
};

// What the stages need of a teacher kind; everything else is the same for synth and Wan teachers.
class Teacher {
public:
    virtual ~Teacher() = default;
    virtual void stage1(const DistillRunConfig& d) = 0;  // stage 1 into d.out (resumed when d.resume)
    virtual WanConfig config() const = 0;
    virtual TokenGrid grid() const = 0;                  // tokens of one forward at the video size
    virtual FinetuneResult finetune(const FinetuneConfig& f) = 0;
    // The student folder `student` written into `out` (the teacher checkpoint's dtype) through the student door.
    virtual void export_student(const std::string& student, const std::string& out) = 0;
    virtual Evaluation evaluate(const std::string& model, int64_t samples, int64_t steps, int64_t batch) = 0;
};

class SynthTeacher : public Teacher {
public:
    SynthTeacher(const SurgeryConfig& c) : c_(c), settings_(load_synth_model(c.teacher).settings) {}
    void stage1(const DistillRunConfig& d) override { run_distill(d); }
    WanConfig config() const override { return read_model_config(find_model_folder(c_.teacher)); }
    TokenGrid grid() const override {
        return token_grid(config(), settings_.size.frames, settings_.size.height, settings_.size.width);
    }
    FinetuneResult finetune(const FinetuneConfig& f) override { return run_finetune(f); }
    void export_student(const std::string& student, const std::string& out) override {
        const auto m = load_synth_student(student, StudentSpec{});
        save_synth_model(m, out, load_model_or_student(c_.teacher).loaded.checkpoint_dtype, kStudentShardBytes);
    }
    Evaluation evaluate(const std::string& model, int64_t samples, int64_t steps, int64_t batch) override {
        auto m = load_synth_student(model, StudentSpec{}, torch::Device(c_.device));  // fp32, as the teacher's reports
        m.dit->eval();
        EvalOptions o;
        o.num_samples = samples;
        o.batch = std::min(samples, batch);
        o.seed = 0;
        o.sampling = m.settings.sampling;
        if (steps > 0) o.sampling.steps = steps;
        o.sheet_videos = samples;
        o.progress = c_.progress;
        auto r = evaluate_synthbench(m, o);
        return {r.sheet, r.json};
    }

private:
    const SurgeryConfig& c_;
    SynthSettings settings_;
};

class WanSurgeryTeacher : public Teacher {
public:
    WanSurgeryTeacher(const SurgeryConfig& c, const Preset& p, const std::string& work)
        : c_(c), wan_(spec(c, p), work + "/wan") {}
    void stage1(const DistillRunConfig& d) override {
        run_stage1(d, open_stage1(d, wan_.settings()), wan_.stage1_source(d.sample_steps));
    }
    WanConfig config() const override { return wan_.config(); }
    TokenGrid grid() const override { return wan_.grid(); }
    FinetuneResult finetune(const FinetuneConfig& f) override { return wan_.finetune(f); }
    void export_student(const std::string& student, const std::string& out) override {
        auto s = load_wan_student(student, StudentSpec{});
        save_wan_student_folder(s.loaded.model, c_.teacher, out,
                                load_model_or_student(c_.teacher).loaded.checkpoint_dtype);
    }
    Evaluation evaluate(const std::string& model, int64_t samples, int64_t steps, int64_t) override {
        return {wan_.heldout_videos(model, samples, steps), std::nullopt};
    }
    int64_t training_prompts() const { return wan_.training_prompts(); }

private:
    static WanTeacherSpec spec(const SurgeryConfig& c, const Preset& p) {
        WanTeacherSpec s;
        s.folder = c.teacher;
        s.prompts = read_prompts_file(c.prompts);
        s.heldout = p.heldout;
        s.videos = c.videos;
        s.frames = c.frames;
        s.height = c.height;
        s.width = c.width;
        if (p.sample_steps > 0) s.sampling.steps = p.sample_steps;
        s.device = torch::Device(c.device);
        s.precision = s.device.is_cuda() ? parse_precision(c.dtype == "fp32" ? "fp32" : "bf16") : Precision::Float32;
        return s;
    }
    const SurgeryConfig& c_;
    WanTeacher wan_;
};

struct Stage3 {
    int64_t steps, batch;
    double lr, teacher_weight;
};

// Student of `plan` with stage-1 phi, fine-tuned for `s.steps` (0: none), in `dir`; returns its model folder.
std::string make_student(const SurgeryConfig& c, Teacher& teacher, const AttentionPlan& plan, const std::string& phi,
                         const std::string& dir, const Stage3& s) {
    if (plan.num_converted() == 0) return c.teacher;  // every block softmax: the student is the teacher
    fs::create_directories(dir);
    const std::string plan_path = dir + "/plan.json", init = dir + "/student-init";
    if (!file_exists(plan_path)) plan.save(plan_path);
    if (!file_exists(init + "/plan.json")) write_student(c.teacher, StudentSpec{plan_path, phi, 0}, init);
    if (s.steps == 0) return init;
    FinetuneConfig f;
    f.student = init;
    f.out = dir + "/stage3";
    f.steps = s.steps;
    f.batch = s.batch;
    f.lr = s.lr;
    if (s.teacher_weight > 0) {
        f.teacher = c.teacher;
        f.teacher_weight = s.teacher_weight;
    }
    f.warmup = std::min<int64_t>(20, s.steps / 10);
    f.dtype = c.dtype;
    f.device = torch::Device(c.device);
    f.checkpoint_every = std::max<int64_t>(10, s.steps / 5);
    f.progress = c.progress;
    f.resume = file_exists(f.out + "/checkpoint/progress.json");
    const auto r = teacher.finetune(f);
    SURGEON_CHECK(r.finished, "surgery: stage 3 stopped before its last step");
    return r.model_dir;
}

double score_of(const Evaluation& e) { return e.synthbench ? (*e.synthbench)["score"].get<double>() : 0.0; }

std::pair<double, double> fidelity(const Evaluation& a, const Evaluation& b) {
    double psnr = 0, ssim = 0;
    const size_t n = std::min(a.videos.size(), b.videos.size());
    for (size_t i = 0; i < n; ++i) {
        psnr += std::min(world::psnr(a.videos[i], b.videos[i]), 100.0);  // identical videos: capped
        ssim += world::ssim(a.videos[i], b.videos[i]);
    }
    return {psnr / static_cast<double>(n), ssim / static_cast<double>(n)};
}

void write_sheet(const Evaluation& teacher, const Evaluation& student, const std::string& path) {
    std::vector<torch::Tensor> rows;
    for (size_t i = 0; i < std::min<size_t>({teacher.videos.size(), student.videos.size(), 4}); ++i) {
        rows.push_back(teacher.videos[i]);
        rows.push_back(student.videos[i]);
    }
    write_png(path, contact_sheet_rows(rows));
}

json plan_rows(const AttentionPlan& plan, const PlanFlops& flops) {
    json rows = json::array();
    for (size_t b = 0; b < plan.blocks.size(); ++b)
        rows.push_back({{"block", b},
                        {"attention", plan.blocks[b].describe()},
                        {"flops_fraction", flops.blocks[b].total() / (flops.teacher_total / plan.blocks.size())}});
    return rows;
}

// The quality table: SynthBench score and fidelity for synth teachers, fidelity only for Wan teachers.
std::string quality_markdown(const json& r) {
    const bool synth = r["student"].contains("score");
    std::string s;
    if (!synth) {
        s += fmt::format("| | PSNR vs teacher | SSIM vs teacher |\n|---|---|---|\n| student ({} held-out prompts, same "
                         "noise) | {:.2f} dB | {:.4f} |\n\n",
                         r["eval_samples"].get<int64_t>(), r["student"]["psnr"].get<double>(),
                         r["student"]["ssim"].get<double>());
        return s + "SynthBench exists only for synth-world teachers: a Wan teacher's student is compared with the "
                   "teacher's own samples.\n\n";
    }
    s += fmt::format("| | SynthBench ({} prompts) | PSNR vs teacher | SSIM vs teacher |\n|---|---|---|---|\n",
                     r["eval_samples"].get<int64_t>());
    s += fmt::format("| teacher | {:.4f} | | |\n", r["teacher"]["score"].get<double>());
    s += fmt::format("| student | {:.4f} ({:.1f}% of the teacher) | {:.2f} dB | {:.4f} |\n\n",
                     r["student"]["score"].get<double>(), 100 * r["student"]["relative_score"].get<double>(),
                     r["student"]["psnr"].get<double>(), r["student"]["ssim"].get<double>());
    if (r.contains("ablations") && !r["ablations"].empty()) {
        s += "Ablations on the same prompts and noise (the chosen plan):\n\n| variant | SynthBench |\n|---|---|\n";
        s += fmt::format("| stage 1 + stage 3 (the student) | {:.4f} |\n", r["student"]["score"].get<double>());
        for (auto it = r["ablations"].begin(); it != r["ablations"].end(); ++it)
            s += fmt::format("| {} | {:.4f} |\n", it.key(), it.value().get<double>());
        s += "\n";
    }
    return s;
}

std::string report_markdown(const json& r) {
    std::string s = "# Surgery report\n\n";
    s += fmt::format("Teacher `{}`, preset `{}`, budget {:.0f}% of the teacher's attention FLOPs; the student runs "
                     "{:.1f}%.\n\n",
                     r["teacher_dir"].get<std::string>(), r["preset"].get<std::string>(), 100 * r["budget"].get<double>(),
                     100 * r["attention_flops_fraction"].get<double>());
    s += quality_markdown(r);
    s += "## Plan\n\n| block | attention | attention FLOPs vs a teacher block |\n|---|---|---|\n";
    for (const auto& row : r["plan"])
        s += fmt::format("| {} | {} | {:.1f}% |\n", row["block"].get<int64_t>(), row["attention"].get<std::string>(),
                         100 * row["flops_fraction"].get<double>());
    s += "\n## Curve\n\n| plan | attention FLOPs | stage-1 error (sum) | SynthBench |\n|---|---|---|---|\n";
    for (const auto& p : r["curve"])
        if (p.contains("error")) s += fmt::format("| {} | {:.1f}% | {:.4g} | {} |\n", p["name"].get<std::string>(),
                         100 * p["flops_fraction"].get<double>(), p["error"].get<double>(),
                         p.contains("score") ? fmt::format("{:.4f}", p["score"].get<double>()) : std::string("-"));
    s += "\nPictures: `errors.png` (stage-1 held-out error per block and option), `curve.png` (quality vs attention "
         "FLOPs), `sheet.png` (teacher and student rows alternating, same prompts and noise).\n";
    s += fmt::format("\nTime: stage 1 {:.0f} s, stage 3 {:.0f} s, report {:.0f} s.\n",
                     r["seconds"]["stage1"].get<double>(), r["seconds"]["stage3"].get<double>(),
                     r["seconds"]["report"].get<double>());
    return s;
}

// The built-in options that fit the teacher's video: a temporal chunk (with its overlap) longer than the latent video
// is left out (a short Wan video at --frames 5 has 2 latent frames), as is anything else its grid cannot take.
json builtin_options(const char* text, const Teacher& teacher) {
    const json all = json::parse(text);
    const WanConfig cfg = teacher.config();
    const TokenGrid grid = teacher.grid();
    json kept = json::array();
    for (const auto& o : all["options"]) {
        std::vector<std::string> names;
        std::vector<PlanEntry> entries;
        parse_table_options(json::array({o}), "built-in options", names, entries);
        try {
            validate_entry(entries[0].normalized(cfg.head_dim()), cfg.head_dim(), &grid, "built-in option");
            kept.push_back(o);
        } catch (const Error&) {
            std::printf("surgery: option %s does not fit the teacher's %lld latent frames; left out\n",
                        names[0].c_str(), static_cast<long long>(grid.frames));
        }
    }
    return json{{"options", kept}};
}

// Stage 1 into work/stage1 (skipped when its table exists, resumed from its checkpoint); returns that folder.
std::string stage1_step(const SurgeryConfig& c, const Preset& p, Teacher& teacher, const std::string& work) {
    std::string options = c.options;
    if (options.empty()) {
        options = work + "/options.json";
        if (!file_exists(options)) {
            const json j = builtin_options(c.preset == "quick" ? kQuickOptions : kDefaultOptions, teacher);
            atomic_write(options, [&](std::ostream& o) { o << j.dump(1) << "\n"; });
        }
    }
    const std::string stage1 = work + "/stage1";
    if (file_exists(stage1 + "/block_errors.json")) return stage1;
    DistillRunConfig d;
    d.model = c.teacher;
    d.options = options;
    d.out = stage1;
    d.prompts = p.prompts;
    d.heldout_prompts = p.heldout;
    d.batch = p.batch;
    d.updates = p.updates;
    d.sample_steps = p.sample_steps;
    d.train.queries = p.queries;
    d.train.rows = p.rows;
    d.heldout_queries = p.heldout_queries;
    d.train.lr = 2e-3;
    d.device = torch::Device(c.device);
    d.progress = c.progress;
    d.resume = file_exists(stage1 + "/checkpoint/progress.json");
    teacher.stage1(d);
    return stage1;
}

// Stage 2's inputs and choice: the tables, the teacher's config and token grid, the selection at the budget.
struct Stage2 {
    BlockErrorTable table, table_init;
    WanConfig cfg;
    TokenGrid grid;
    RateSelection sel;
    PlanFlops flops;
};

Stage2 stage2_step(const SurgeryConfig& c, const Teacher& teacher, const std::string& stage1) {
    Stage2 s;
    s.table = BlockErrorTable::load(stage1 + "/block_errors.json");
    s.table_init = BlockErrorTable::load(stage1 + "/block_errors_init.json");
    s.cfg = teacher.config();
    s.grid = teacher.grid();
    s.sel = select_rates(s.table, s.cfg, s.grid, c.budget);
    s.flops = plan_attention_flops(s.sel.plan, s.cfg.num_heads, s.cfg.head_dim(), s.grid);
    return s;
}

// The quality curve: per budget the knapsack plan and the best uniform one (their stage-1 error, and with the
// preset's curve samples a student of each, fine-tuned briefly and scored on SynthBench), and the plot's series.
struct Curve {
    json points = json::array();
    std::vector<Series> series;
};

Curve curve_step(const SurgeryConfig& c, const Preset& p, Teacher& teacher, const Stage2& s2,
                 const std::string& stage1, const std::string& work, bool scored) {
    Curve out;
    std::vector<double> kx, ky, ux, uy;
    const auto& cfg = s2.cfg;
    for (double f : p.curve.empty() ? std::vector<double>{0.15, 0.25, 0.5, 0.75} : p.curve) {
        RateSelection s;
        try {
            s = select_rates(s2.table, cfg, s2.grid, f);
        } catch (const Error& e) {  // no choice of options reaches this budget: a gap in the curve
            out.points.push_back({{"name", fmt::format("knapsack {:.0f}%", 100 * f)}, {"budget", f}, {"reachable", false}});
            continue;
        }
        std::vector<std::pair<std::string, KnapsackSolution>> plans = {{fmt::format("knapsack {:.0f}%", 100 * f), s.solution}};
        if (s.uniform) plans.push_back({fmt::format("uniform {} {:.0f}%", s.uniform_option, 100 * f), *s.uniform});
        for (const auto& [name, sol] : plans) {
            const auto plan = plan_from_choice(s2.table, sol.choice);
            json pt = {{"name", name}, {"budget", f}, {"error", sol.error},
                       {"flops_fraction", plan_attention_flops(plan, cfg.num_heads, cfg.head_dim(), s2.grid).fraction()}};
            if (scored && !p.curve.empty() && p.curve_samples > 0) {
                const std::string dir = work + fmt::format("/curve/{}", name.substr(0, name.find(' ')) +
                                                                            fmt::format("{:.0f}", 100 * f));
                const auto m = make_student(c, teacher, plan, stage1, dir,
                                            {p.curve_finetune_steps, p.finetune_batch, p.finetune_lr, p.teacher_weight});
                pt["score"] = score_of(teacher.evaluate(m, p.curve_samples, p.eval_steps, p.eval_batch));
            }
            const bool knap = name.rfind("knapsack", 0) == 0;
            const double y = pt.contains("score") ? pt["score"].get<double>() : sol.error;
            (knap ? kx : ux).push_back(pt["flops_fraction"].get<double>());
            (knap ? ky : uy).push_back(y);
            out.points.push_back(pt);
        }
    }
    out.series = {{"knapsack", kx, ky, {0.8f, -0.6f, -0.6f}, true, true},
                  {"uniform", ux, uy, {-0.6f, -0.4f, 0.8f}, false, true}};
    return out;
}

// Ablations on the same prompts (full preset, SynthBench): the chosen plan without stage 3, and also without
// stage 1 (phi drawn from the seed, scale at its construction value).
json ablation_step(const SurgeryConfig& c, const Preset& p, Teacher& teacher, const AttentionPlan& plan,
                   const std::string& work) {
    json ablations = json::object();
    if (p.curve_samples > 0 && plan.num_converted() > 0 && p.finetune_steps > 0) {
        ablations["no_stage3"] = score_of(teacher.evaluate(work + "/main/student-init", p.eval_samples, p.eval_steps,
                                                           p.eval_batch));
        const std::string seeded = work + "/ablation-no-stage1";
        if (!file_exists(seeded + "/plan.json"))
            write_student(c.teacher, StudentSpec{work + "/main/plan.json", "", 0}, seeded);
        ablations["no_stage1_no_stage3"] = score_of(teacher.evaluate(seeded, p.eval_samples, p.eval_steps, p.eval_batch));
    }
    return ablations;
}

json report_json(const SurgeryConfig& c, const Preset& p, const Stage2& s2, const Evaluation& teacher_eval,
                 const Evaluation& student_eval, const Curve& curve, const json& ablations, const json& seconds) {
    const auto [psnr, ssim] = fidelity(student_eval, teacher_eval);
    const auto& sel = s2.sel;
    json r;
    r["teacher_dir"] = c.teacher;
    r["preset"] = c.preset;
    r["budget"] = c.budget;
    r["attention_flops_fraction"] = s2.flops.fraction();
    r["plan"] = plan_rows(sel.plan, s2.flops);
    r["knapsack"] = {{"error", sel.solution.error}, {"optimal", sel.solution.optimal}};
    if (sel.uniform) r["uniform"] = {{"option", sel.uniform_option}, {"error", sel.uniform->error}};
    r["eval_samples"] = p.eval_samples;
    if (teacher_eval.synthbench) {
        const json &tj = *teacher_eval.synthbench, &sj = *student_eval.synthbench;
        const double ts = tj["score"].get<double>(), ss = sj["score"].get<double>();
        r["teacher"] = {{"score", ts}, {"metrics", tj["metrics"]}};
        r["student"] = {{"score", ss}, {"relative_score", ts > 0 ? ss / ts : 0.0}, {"metrics", sj["metrics"]},
                        {"psnr", psnr}, {"ssim", ssim}};
        r["sampling"] = tj["sampling"];
    } else {
        r["eval_samples"] = std::min<int64_t>(p.eval_samples, static_cast<int64_t>(student_eval.videos.size()));
        r["teacher"] = json::object();
        r["student"] = {{"psnr", psnr}, {"ssim", ssim}};
        r["synthbench"] = "only for synth-world teachers";
    }
    r["stage1"] = {{"errors", s2.table.to_json()["errors"]}, {"errors_init", s2.table_init.to_json()["errors"]}};
    r["curve"] = curve.points;
    r["curve_y"] = !teacher_eval.synthbench || p.curve.empty() || p.curve_samples == 0
                       ? "stage-1 summed held-out error (proxy; no SynthBench)"
                       : "SynthBench score";
    r["seconds"] = seconds;
    r["ablations"] = ablations;
    return r;
}

void write_report(const SurgeryConfig& c, const json& r, const std::string& stage1, const Evaluation& teacher_eval,
                  const Evaluation& student_eval, const Curve& curve) {
    atomic_write(c.out + "/report.json", [&](std::ostream& o) { o << r.dump(1) << "\n"; });
    atomic_write(c.out + "/report.md", [&](std::ostream& o) { o << report_markdown(r); });
    fs::copy_file(stage1 + "/errors.png", c.out + "/errors.png", fs::copy_options::overwrite_existing);
    write_sheet(teacher_eval, student_eval, c.out + "/sheet.png");
    SeriesPlotOptions po;
    po.title = "quality vs attention FLOPs";
    po.x_label = "attention FLOPs / teacher";
    po.y_label = r["curve_y"].get<std::string>();
    write_png(c.out + "/curve.png", render_series_plot(curve.series, po));
}

}  // namespace

void SurgeryConfig::validate() const {
    SURGEON_CHECK(std::isfinite(budget) && budget > 0 && budget <= 1, "surgery: --budget must be in (0, 1], got {}",
                  budget);
    SURGEON_CHECK(preset == "quick" || preset == "full", "surgery: --preset must be quick or full, got '{}'", preset);
    SURGEON_CHECK(dtype == "fp32" || dtype == "bf16" || dtype == "bf16-lean",
                  "surgery: --dtype must be fp32, bf16 or bf16-lean, got '{}'", dtype);
    SURGEON_CHECK(distill_prompts >= 0 && distill_updates >= 0 && eval_samples >= 0 && finetune_steps >= -1,
                  "surgery: overrides must be >= 0");
    for (double f : curve)
        SURGEON_CHECK(std::isfinite(f) && f > 0 && f <= 1, "surgery: curve fractions must be in (0, 1], got {}", f);
    if (is_wan_t2v_folder(teacher)) {
        SURGEON_CHECK(!prompts.empty(), "surgery: {} is a Wan2.1 folder: --prompts FILE is required (one prompt per line)",
                      teacher);
        SURGEON_CHECK(frames >= 1 && frames % 4 == 1 && height > 0 && width > 0 && height % 16 == 0 && width % 16 == 0,
                      "surgery: --frames must be 4n+1 and --height/--width positive multiples of 16, got {}x{}x{}",
                      frames, height, width);
        return;
    }
    SURGEON_CHECK(is_synth_model_folder(teacher), "surgery: {} is neither a synthetic-world model folder nor a Wan2.1 "
                  "folder with a text encoder", teacher);
    SURGEON_CHECK(prompts.empty() && videos.empty(), "surgery: --prompts and --videos are for Wan2.1 teachers; a synth "
                  "teacher samples its world's prompts");
}

SurgeryResult run_surgery(const SurgeryConfig& c) {
    c.validate();
    Preset p = preset_of(c);
    const std::string work = c.out + "/work";
    fs::create_directories(work);
    std::unique_ptr<Teacher> teacher;
    if (is_synth_model_folder(c.teacher)) {
        teacher = std::make_unique<SynthTeacher>(c);
    } else {
        teacher = std::make_unique<WanSurgeryTeacher>(c, p, work);
        p.prompts = static_cast<const WanSurgeryTeacher&>(*teacher).training_prompts();
    }
    json seconds = {{"stage1", 0.0}, {"stage3", 0.0}, {"report", 0.0}};

    auto t0 = std::chrono::steady_clock::now();
    const std::string stage1 = stage1_step(c, p, *teacher, work);
    seconds["stage1"] = seconds_since(t0);

    const Stage2 s2 = stage2_step(c, *teacher, stage1);  // the knapsack at the budget

    t0 = std::chrono::steady_clock::now();
    const std::string student = make_student(c, *teacher, s2.sel.plan, stage1, work + "/main",
                                             {p.finetune_steps, p.finetune_batch, p.finetune_lr, p.teacher_weight});
    seconds["stage3"] = seconds_since(t0);

    // The student itself in OUT (in the teacher checkpoint's dtype), then the report on that very artifact.
    teacher->export_student(student, c.out);
    t0 = std::chrono::steady_clock::now();
    const auto teacher_eval = teacher->evaluate(c.teacher, p.eval_samples, p.eval_steps, p.eval_batch);
    const auto student_eval = teacher->evaluate(c.out, p.eval_samples, p.eval_steps, p.eval_batch);
    const bool scored = teacher_eval.synthbench.has_value();
    const json ablations = scored ? ablation_step(c, p, *teacher, s2.sel.plan, work) : json::object();
    const Curve curve = curve_step(c, p, *teacher, s2, stage1, work, scored);
    seconds["report"] = seconds_since(t0);

    const json r = report_json(c, p, s2, teacher_eval, student_eval, curve, ablations, seconds);
    write_report(c, r, stage1, teacher_eval, student_eval, curve);
    return {r};
}

}  // namespace surgeon
