// Checkpoints, records and the exported model of a training run (see train_state.h).
#include "pipelines/train_state.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/plot.h"
#include "core/video_io.h"
#include "model/model_io.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

TensorMap prefixed(const TensorMap& m, const std::string& p) {
    TensorMap o;
    for (const auto& [n, t] : m) o[p + n] = t.detach().to(torch::kCPU).contiguous();
    return o;
}

// A simple line plot (log10 loss vs step) as an image [3, H, W] in [-1, 1].
torch::Tensor plot_loss(const TrainHistory& hist) {
    std::vector<double> x, y;
    for (const auto& h : hist) x.push_back(h[0]), y.push_back(h[1]);
    LinePlotOptions o;
    o.title = "training loss (flow matching MSE, mean per log window)";
    o.x_label = "step";
    o.y_label = "loss (log)";
    return render_line_plot(x, y, o);
}

// The checkpoint a resume reads (checkpoint/, or checkpoint.old/ after a kill mid-swap; empty when none) and its
// validated progress.json: step an integer >= 0, elapsed_s finite and >= 0.
fs::path train_checkpoint_dir(const std::string& out_dir) {
    const fs::path ck = fs::path(out_dir) / "checkpoint", ck_old = fs::path(out_dir) / "checkpoint.old";
    return fs::exists(ck / "progress.json") ? ck : (fs::exists(ck_old / "progress.json") ? ck_old : fs::path());
}
std::pair<int64_t, double> read_train_progress(const fs::path& src) {
    const std::string prog_path = (src / "progress.json").string();
    const auto prog = read_json_file(prog_path);
    SURGEON_CHECK(prog.is_object() && prog.contains("step") && prog["step"].is_number_integer() && prog["step"].get<int64_t>() >= 0,
                  "{}: 'step' must be an integer >= 0 (got {})", prog_path, prog.is_object() ? prog.value("step", json()).dump() : prog.dump());
    const json e = prog.value("elapsed_s", json(0.0));
    SURGEON_CHECK(e.is_number() && std::isfinite(e.get<double>()) && e.get<double>() >= 0,
                  "{}: 'elapsed_s' must be a number >= 0, got {}", prog_path, e.dump());
    return {prog["step"].get<int64_t>(), e.get<double>()};
}

}  // namespace

void write_train_record(const TrainConfig& c, const std::string& out_dir, bool resume) {
    const fs::path cfg_path = fs::path(out_dir) / "train_config.json";
    TrainConfig record = c;
    if (resume && !train_checkpoint_dir(out_dir).empty()) read_train_progress(train_checkpoint_dir(out_dir));  // before writing
    if (resume && fs::exists(cfg_path)) {
        const auto before = read_json_file(cfg_path.string());
        // Checked before anything is written: a resume must keep the run's architecture and data.
        const json now = c.to_json();
        for (const char* k : {"model", "text_encoder", "world", "position_channels"})
            SURGEON_CHECK(before.value(k, json()) == now.value(k, json()),
                          "--resume: the config's '{}' differs from the run's {} (resume with the same config)", k,
                          cfg_path.string());
        if (c.init_from.empty() && before.contains("train"))
            record.init_from = before["train"].value("init_from", std::string());
    }
    atomic_write(cfg_path.string(), [&](std::ostream& o) { o << record.to_json().dump(1) << "\n"; });
}

void write_train_history(const std::string& dir, const TrainHistory& hist) {
    atomic_write((fs::path(dir) / "loss.csv").string(), [&](std::ostream& o) {
        o << "step,loss,lr,grad_norm,elapsed_s\n";
        for (const auto& h : hist) o << fmt::format("{},{:.6g},{:.6g},{:.6g},{:.1f}\n", h[0], h[1], h[2], h[3], h[4]);
    });
    write_png((fs::path(dir) / "loss.png").string(), plot_loss(hist));
}

int64_t load_train_checkpoint(const std::string& out_dir, TrainParams& p, TrainOptimizer& opt, TrainHistory& hist,
                              double& elapsed_s) {
    // atomic_write_dir keeps checkpoint/ or, after a kill mid-swap, checkpoint.old/ complete.
    const fs::path src = train_checkpoint_dir(out_dir);
    if (src.empty()) return 0;
    const auto [start, elapsed] = read_train_progress(src);
    elapsed_s = elapsed;
    auto st = load_safetensors((src / "state.safetensors").string());
    torch::NoGradGuard ng;
    for (auto& [n, t] : p.dit) t.copy_(st.at("dit." + n));
    for (auto& [n, t] : p.text_encoder) t.copy_(st.at("text_encoder." + n));
    for (auto& [n, t] : opt.ema_dit()) t.copy_(st.at("ema.dit." + n));
    for (auto& [n, t] : opt.ema_text_encoder()) t.copy_(st.at("ema.text_encoder." + n));
    auto h = st.at("history").to(torch::kFloat64);
    for (int64_t i = 0; i < h.size(0); ++i) {
        std::array<double, 5> r{};
        for (int k = 0; k < 5; ++k) r[k] = h[i][k].item<double>();
        hist.push_back(r);
    }
    opt.load_moments(st);
    std::fprintf(stderr, "resumed from %s at step %lld\n", src.string().c_str(), static_cast<long long>(start));
    return start;
}

void save_train_checkpoint(const std::string& out_dir, int64_t step, double elapsed, const TrainParams& p,
                           const TrainOptimizer& opt, const TrainHistory& hist) {
    TensorMap st;
    for (const auto& [n, t] : prefixed(p.dit, "dit.")) st[n] = t;
    for (const auto& [n, t] : prefixed(p.text_encoder, "text_encoder.")) st[n] = t;
    for (const auto& [n, t] : prefixed(opt.ema_dit(), "ema.dit.")) st[n] = t;
    for (const auto& [n, t] : prefixed(opt.ema_text_encoder(), "ema.text_encoder.")) st[n] = t;
    auto h = torch::zeros({static_cast<int64_t>(hist.size()), 5}, torch::kFloat64);
    for (size_t i = 0; i < hist.size(); ++i)
        for (int k = 0; k < 5; ++k) h[i][k] = hist[i][k];
    st["history"] = h;
    // AdamW moments by parameter index (own format: exact and independent of torch's archive layout).
    opt.save_moments(st);
    atomic_write_dir((fs::path(out_dir) / "checkpoint").string(), [&](const std::string& tmp) {
        save_safetensors((fs::path(tmp) / "state.safetensors").string(), st);
        atomic_write((fs::path(tmp) / "progress.json").string(),
                     [&](std::ostream& o) { o << json{{"step", step}, {"elapsed_s", elapsed}}.dump() << "\n"; });
    });
    write_train_history(out_dir, hist);
}

void export_train_model(const std::string& out_dir, const TrainConfig& c, const SynthSettings& settings,
                        const TrainOptimizer& opt) {
    SynthModel e;
    e.settings = settings;
    e.dit = WanModel(c.model);
    e.text_encoder = world::TextEncoder(settings.text_encoder);
    load_state_dict_strict(*e.dit, opt.ema_dit(), {}, "ema");
    world::load_text_encoder_state(e.text_encoder, prefixed(opt.ema_text_encoder(), world::kTextEncoderPrefix));
    atomic_write_dir((fs::path(out_dir) / "model").string(), [&](const std::string& tmp) {
        save_synth_model(e, tmp, torch::kBFloat16, static_cast<uint64_t>(c.max_shard_bytes));
    });
}

}  // namespace surgeon
