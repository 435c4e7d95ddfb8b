// Stage 1 on a synth model: record, distil every (block, option), write the table; resumable per entry.
#include "pipelines/distill_synth.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "pipelines/synth_model.h"
#include "surgery/rate_selection.h"
#include "world/prompt.h"
#include "world/world.h"

namespace surgeon {
using json = nlohmann::json;

json DistillRunConfig::settings_json(const json& options_json) const {
    return {{"model", model},         {"options", options_json},
            {"clips", clips},         {"heldout_clips", heldout_clips},
            {"sigmas", sigmas},       {"data_seed", data_seed},
            {"steps", train.steps},   {"lr", train.lr},
            {"weight_decay", train.weight_decay}, {"seed", train.seed}};
}

namespace {
// Records every block's core on clips [first, first + count) at every sigma (batch 1, the clip's prompt).
std::map<int64_t, std::vector<AttentionSample>> record(SynthModel& m, const TokenGrid& grid, const DistillRunConfig& c,
                                                       int64_t first, int64_t count, Progress& bar, int64_t& done) {
    torch::NoGradGuard ng;
    const auto& size = m.settings.size;
    AttentionRecorder rec(grid, {}, torch::kFloat32, m.dit->device());
    for (int64_t n = first; n < first + count; ++n) {
        const auto spec = world::sample_spec(world::train_world_seed(c.data_seed, static_cast<uint64_t>(n)));
        const auto x0 = world::render(spec, size).unsqueeze(0).to(m.dit->device());
        const auto ctx = m.encode({world::prompt(spec)});
        auto gen = at::make_generator<at::CPUGeneratorImpl>(c.data_seed * 1000003ull + static_cast<uint64_t>(n));
        for (double s : c.sigmas) {
            const auto eps = at::randn(x0.sizes(), gen, torch::kFloat32).to(x0.device());
            const auto xs = (1 - s) * x0 + s * eps;
            m.velocity(xs, torch::full({1}, 1000.0 * s, xs.options()), ctx, {}, &rec.tap());
            bar.update(++done, "recording the teacher");
        }
    }
    return rec.samples();
}

std::string entry_key(const std::string& option, int64_t block) { return fmt::format("{}/{}", option, block); }
}  // namespace

DistillRunResult run_distill(const DistillRunConfig& c) {
    SURGEON_CHECK(c.clips >= 1 && c.heldout_clips >= 1, "distill: need at least one training and one held-out clip, got {} and {}",
                  c.clips, c.heldout_clips);
    SURGEON_CHECK(!c.sigmas.empty(), "distill: no sigmas");
    for (double s : c.sigmas) SURGEON_CHECK(s > 0 && s <= 1, "distill: sigmas must be in (0, 1], got {}", s);
    SURGEON_CHECK(world::avoids_eval_world_seeds(world::train_world_seed(c.data_seed, 0),
                                                 static_cast<uint64_t>(c.clips + c.heldout_clips)),
                  "distill: data seed {} would draw SynthBench's evaluation clips; use another", c.data_seed);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> names;
    std::vector<PlanEntry> entries;
    json oj;
    try {
        oj = json::parse(read_text_file(c.options));
    } catch (const json::exception& e) {
        fail("{}: invalid JSON ({})", c.options, e.what());
    }
    SURGEON_CHECK(oj.is_object() && oj.contains("options"), "{}: expected an object with 'options'", c.options);
    parse_table_options(oj["options"], c.options, names, entries);
    const json settings = c.settings_json(oj);
    const std::string progress_path = c.out + "/progress.json";
    json progress = {{"settings", settings}, {"done", json::object()}};
    if (file_exists(progress_path)) {
        SURGEON_CHECK(c.resume, "{} holds a distillation run; --resume continues it (or choose another --out)", c.out);
        json old = json::parse(read_text_file(progress_path));
        for (auto it = settings.begin(); it != settings.end(); ++it)
            SURGEON_CHECK(old["settings"].contains(it.key()) && old["settings"][it.key()] == it.value(),
                          "--resume: setting '{}' differs from the run in {} (was {}, now {})", it.key(), c.out,
                          old["settings"].contains(it.key()) ? old["settings"][it.key()].dump() : "absent", it.value().dump());
        progress["done"] = old["done"];
    } else {
        SURGEON_CHECK(!c.resume, "--resume: no run in {} (no progress.json)", c.out);
        std::filesystem::create_directories(c.out);
    }

    auto m = load_synth_model(c.model, c.device);
    m.dit->eval();
    m.text_encoder->eval();
    const auto& cfg = m.dit->config();
    const auto& size = m.settings.size;
    const TokenGrid grid{size.frames / cfg.patch_size[0], size.height / cfg.patch_size[1], size.width / cfg.patch_size[2]};
    for (size_t o = 0; o < entries.size(); ++o) {
        entries[o] = entries[o].normalized(cfg.head_dim());
        validate_entry(entries[o], cfg.head_dim(), &grid, fmt::format("{}: option '{}'", c.options, names[o]));
    }

    DistillRunResult r;
    int64_t distil_entries = 0;
    for (const auto& e : entries) distil_entries += e.kind != AttentionKind::Softmax;
    r.entries_total = distil_entries * cfg.num_layers;
    r.entries_done = static_cast<int64_t>(progress["done"].size());
    const int64_t recordings = (c.clips + c.heldout_clips) * static_cast<int64_t>(c.sigmas.size());
    if (r.entries_done < r.entries_total) {
        Progress rec_bar("record", recordings, c.progress);
        int64_t done = 0;
        auto train = record(m, grid, c, 0, c.clips, rec_bar, done);
        auto heldout = record(m, grid, c, c.clips, c.heldout_clips, rec_bar, done);
        rec_bar.finish();
        Progress bar("distill", r.entries_total, c.progress, r.entries_done);
        const int64_t entries_at_start = r.entries_done;  // every call finishes at least one entry
        for (int64_t b = 0; b < cfg.num_layers; ++b) {
            for (size_t o = 0; o < entries.size(); ++o) {
                if (entries[o].kind == AttentionKind::Softmax || progress["done"].contains(entry_key(names[o], b))) continue;
                const double elapsed =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                if (c.time_limit_s > 0 && elapsed >= c.time_limit_s && r.entries_done > entries_at_start) {
                    bar.finish("time limit reached; --resume continues");
                    return r;
                }
                DistillOptions opt = c.train;
                opt.seed = c.train.seed * 1000003ull + static_cast<uint64_t>(b);
                auto res = distill_block(entries[o], train.at(b), heldout.at(b), opt);
                const std::string dir = fmt::format("{}/phi/{}", c.out, names[o]);
                TensorMap phi;
                for (const auto& [n, t] : state_dict(*res.core)) phi[n] = t.to(torch::kCPU);
                if (!phi.empty()) {  // elu1/relu maps have no parameters
                    std::filesystem::create_directories(dir);
                    save_safetensors(fmt::format("{}/block{}.safetensors", dir, b), phi);
                }
                progress["done"][entry_key(names[o], b)] = {
                    {"heldout_l1", res.heldout_l1},
                    {"heldout_l1_init", res.heldout_l1_init},
                    {"train_l1_last", res.train_l1.empty() ? json(nullptr) : json(res.train_l1.back())}};
                atomic_write(progress_path, [&](std::ostream& os) { os << progress.dump(1) << "\n"; });
                r.entries_done = static_cast<int64_t>(progress["done"].size());
                bar.update(r.entries_done, fmt::format("block {} {} l1 {:.4g} -> {:.4g}", b, names[o],
                                                       res.heldout_l1_init, res.heldout_l1));
            }
        }
        bar.finish();
    }
    BlockErrorTable table;
    table.names = names;
    table.options = entries;
    for (int64_t b = 0; b < cfg.num_layers; ++b) {
        std::vector<double> row;
        for (size_t o = 0; o < entries.size(); ++o)
            row.push_back(entries[o].kind == AttentionKind::Softmax
                              ? 0.0
                              : progress["done"].at(entry_key(names[o], b)).at("heldout_l1").get<double>());
        table.errors.push_back(row);
    }
    table.save(c.out + "/block_errors.json");
    r.finished = true;
    return r;
}

}  // namespace surgeon
