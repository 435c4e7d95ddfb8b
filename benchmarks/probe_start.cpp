// Where does a synth model put an object at the sampler's first step? The x0 prediction at sigma 1 (pure noise,
// x0 = x - v) for one large object "moving left / right / up / down fast" or "staying still" on gray, over noise
// seeds (the noise `surgeon generate --seed S` draws): the centroid of the prediction's difference from the gray
// background in the first and the last frame, for the conditional, the unconditional ("") and the CFG-combined
// prediction (the model's default guidance). A model that knows where "moving left" objects start puts the first
// frame's centroid right of centre (x > 0.5) and the last frame's left of it; the spread over seeds says how much
// the noise itself already steers the first step. Found useful when "moving left" kept going right.
// Usage: probe_start [MODEL_DIR] [N_SEEDS] [DEVICE] [OBJECT="a large blue circle"] (on gray: no gray objects)
#include <cmath>
#include <cstdio>

#include "pipelines/synth_model.h"
#include "world/prompt.h"
#include "world/world.h"

using namespace surgeon;

namespace {

// Centroid (x, y in [0, 1]) of |x0 - background| per video and frame: [B, T, 2].
torch::Tensor centroids(const torch::Tensor& x0, const torch::Tensor& bg) {
    auto w = (x0 - bg).pow(2).sum(1).sqrt();  // [B, T, H, W]
    const int64_t H = w.size(2), W = w.size(3);
    auto xs = (torch::arange(W, torch::kFloat32) + 0.5) / W;  // [W]
    auto ys = (torch::arange(H, torch::kFloat32) + 0.5) / H;  // [H]
    auto total = w.sum({2, 3}).clamp_min(1e-12);             // [B, T]
    auto cx = (w * xs.view({1, 1, 1, W})).sum({2, 3}) / total;
    auto cy = (w * ys.view({1, 1, H, 1})).sum({2, 3}) / total;
    return torch::stack({cx, cy}, -1);  // [B, T, 2]
}

int run(int argc, char** argv) {
    const std::string dir = argc > 1 ? argv[1] : "models/synth-teacher";
    const int n = argc > 2 ? std::atoi(argv[2]) : 16;
    const std::string device = argc > 3 ? argv[3] : "cpu";
    const std::string object = argc > 4 ? argv[4] : "a large blue circle";
    if (n < 2) {
        std::fprintf(stderr, "probe_start: N_SEEDS must be >= 2, got %d\n", n);
        return 2;
    }
    if (device.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
        std::printf("CUDA is not available on this machine.\n");
        return 0;
    }
    auto m = load_synth_model(dir, torch::Device(device));
    m.dit->eval();
    m.text_encoder->eval();
    torch::NoGradGuard ng;
    std::vector<std::string> prompts;
    for (const char* motion : {"moving left fast", "moving right fast", "moving up fast", "moving down fast", "staying still"}) {
        prompts.push_back(object + " " + motion + " on a gray background");
        world::parse_prompt(prompts.back());  // a bad OBJECT is an error naming the word, before any forward
    }
    const double g = m.settings.sampling.guidance;
    std::vector<torch::Tensor> ns;
    for (int s = 0; s < n; ++s) ns.push_back(m.noise(static_cast<uint64_t>(s)));
    auto x = torch::cat(ns, 0).to(m.dit->device());  // [n, 3, T, H, W]
    const auto gray = world::rgb(world::BackgroundColour::Gray);
    auto bg = (torch::tensor({gray[0], gray[1], gray[2]}) * 2 - 1).view({1, 3, 1, 1, 1}).to(x.device());
    auto t = torch::full({n}, 1000.0, x.options());
    auto predict = [&](const std::string& p) { return m.velocity(x, t, m.encode(std::vector<std::string>(n, p))); };
    const auto v_u = predict("");
    std::printf("%s, %d noise seeds, x0 prediction at sigma 1; centroid of |x0 - gray| (x, y in [0, 1]), mean +- "
                "std over seeds, first frame -> last frame; CFG %.1f\n", dir.c_str(), n, g);
    auto report = [&](const std::string& label, const torch::Tensor& v) {
        auto c = centroids((x - v).cpu(), bg.cpu());  // [n, T, 2]
        auto first = c.select(1, 0), last = c.select(1, c.size(1) - 1);
        auto mean = [](const torch::Tensor& a, int k) { return a.select(1, k).mean().item<double>(); };
        auto sd = [](const torch::Tensor& a, int k) { return a.select(1, k).std().item<double>(); };
        std::printf("  %-12s x %.3f+-%.3f -> %.3f+-%.3f   y %.3f+-%.3f -> %.3f+-%.3f\n", label.c_str(), mean(first, 0),
                    sd(first, 0), mean(last, 0), sd(last, 0), mean(first, 1), sd(first, 1), mean(last, 1), sd(last, 1));
    };
    report("unconditional", v_u);
    for (const auto& p : prompts) {
        const auto v_c = predict(p);
        std::printf(" \"%s\"\n", p.c_str());
        report("conditional", v_c);
        report("CFG", v_u + g * (v_c - v_u));
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
