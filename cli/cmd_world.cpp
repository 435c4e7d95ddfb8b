// `surgeon world` (one synthetic sample as MP4, GIF, contact sheet PNG, prompt and spec) and `surgeon bench-gt`
// (SynthBench on ground-truth renders: validates the benchmark; the ground-truth score eval reports).
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/video_io.h"
#include "world/prompt.h"
#include "world/synthbench.h"
#include "world/world.h"

namespace surgeon::cli {
namespace {

struct WorldOptions {
    uint64_t seed = 0;
    std::string out;
    world::WorldSize size;
    int fps = 8;
};

struct BenchGtOptions {
    int64_t num_samples = 64;
    uint64_t seed = 0;
    std::string json;
    world::WorldSize size;
};

void add_size_options(CLI::App* cmd, world::WorldSize& size) {
    cmd->add_option("--frames", size.frames, "frames per video")->check(CLI::Range(3, 1024))->capture_default_str();
    cmd->add_option("--height", size.height, "frame height in pixels")->check(CLI::Range(16, 4096))->capture_default_str();
    cmd->add_option("--width", size.width, "frame width in pixels")->check(CLI::Range(16, 4096))->capture_default_str();
}

void write_text(const std::string& path, const std::string& text) {
    atomic_write(path, [&](std::ostream& os) { os << text; });
}

void run_world(const WorldOptions& o) {
    check_output_path(o.out, {}, {}, OutputKind::Folder);
    std::error_code ec;
    std::filesystem::create_directories(o.out, ec);
    SURGEON_CHECK(!ec && std::filesystem::is_directory(o.out), "cannot create output folder '{}': {}", o.out,
                  ec.message());
    const auto spec = world::sample_spec(o.seed);
    const auto video = world::render(spec, o.size);  // [3, T, H, W]
    const std::string dir = std::filesystem::path(o.out).string() + "/";
    const std::string text = world::prompt(spec);
    write_text(dir + "prompt.txt", text + "\n");
    auto j = world::to_json(spec);
    j["seed"] = o.seed;
    j["prompt"] = text;
    j["size"] = {{"frames", o.size.frames}, {"height", o.size.height}, {"width", o.size.width}};
    write_text(dir + "spec.json", j.dump(2) + "\n");
    write_png(dir + "sheet.png", contact_sheet(video));
    write_video(dir + "sample.gif", video, o.fps);
    write_video(dir + "sample.mp4", video, o.fps);
    fmt::print("seed {}: {}\nwrote {}{{sample.mp4, sample.gif, sheet.png, prompt.txt, spec.json}}\n", o.seed, text, dir);
}

void run_bench_gt(const BenchGtOptions& o) {
    SURGEON_CHECK(o.num_samples > 0 && o.num_samples <= 100000, "--num-samples must be in 1..100000, got {}", o.num_samples);
    if (!o.json.empty()) check_output_path(o.json, {}, {}, OutputKind::File, "--json");
    std::vector<world::BenchScores> all;
    nlohmann::json samples = nlohmann::json::array();
    for (int64_t i = 0; i < o.num_samples; ++i) {
        const uint64_t seed = o.seed + static_cast<uint64_t>(i);
        const auto spec = world::sample_spec(seed);
        auto s = world::synthbench(world::render(spec, o.size), spec);
        auto js = world::to_json(s);
        js["seed"] = seed;
        js["prompt"] = world::prompt(spec);
        samples.push_back(js);
        all.push_back(std::move(s));
    }
    const auto m = world::mean_scores(all);
    auto j = world::to_json(m);
    j["ground_truth_score"] = m.score;
    j["num_samples"] = o.num_samples;
    j["seed"] = o.seed;
    j["size"] = {{"frames", o.size.frames}, {"height", o.size.height}, {"width", o.size.width}};
    j["samples"] = samples;
    if (!o.json.empty()) write_text(o.json, j.dump(2) + "\n");
    fmt::print("SynthBench on {} ground-truth samples (seeds {}..{}): score {:.4f}\n", o.num_samples, o.seed,
               o.seed + o.num_samples - 1, m.score);
    for (const auto& name : world::metric_names())
        fmt::print("  {:<12} {:.4f}\n", name, j["metrics"][name].get<double>());
}

}  // namespace

void register_world_commands(CLI::App& app) {
    auto wo = std::make_shared<WorldOptions>();
    auto* w = app.add_subcommand("world", "Render one synthetic world sample: sample.mp4, sample.gif, sheet.png, "
                                          "prompt.txt, spec.json");
    w->add_option("--seed", wo->seed, "sample seed (same seed, same video and prompt on any machine)")
        ->check(unsigned_integer())
        ->capture_default_str();
    w->add_option("--out", wo->out, "output folder (created if missing)")->required();
    add_size_options(w, wo->size);
    w->add_option("--fps", wo->fps, "frames per second of the MP4 and GIF")->check(CLI::Range(1, 120))->capture_default_str();
    w->callback([wo] { run_world(*wo); });

    auto bo = std::make_shared<BenchGtOptions>();
    auto* b = app.add_subcommand("bench-gt", "Score ground-truth world videos with SynthBench (validates the benchmark)");
    b->add_option("--num-samples", bo->num_samples, "number of samples (seeds seed .. seed+N-1)")->capture_default_str();
    b->add_option("--seed", bo->seed, "first sample seed")->check(unsigned_integer())->capture_default_str();
    b->add_option("--json", bo->json, "write the report here (score, metrics, ground_truth_score, samples)");
    add_size_options(b, bo->size);
    b->callback([bo] { run_bench_gt(*bo); });
}

}  // namespace surgeon::cli
