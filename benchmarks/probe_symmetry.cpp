// How far a synth model is from commuting with flips of its input: relative difference between f(flip x) flipped
// back and f(x), for time reversal, horizontal and vertical flips, on noised ground-truth clips with their
// prompts held fixed; plus the patch embedding's weight RMS per input channel (RGB, then position channels).
// The world is symmetric under time reversal only together with swapping left/right and up/down in the prompt,
// so a model that is (nearly) time-reversal equivariant with the prompt held fixed cannot follow "moving left".
// Usage: probe_symmetry MODEL_DIR
#include <cstdio>

#include "pipelines/synth_model.h"
#include "world/prompt.h"
#include "world/world.h"

using namespace surgeon;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: probe_symmetry MODEL_DIR\n");
        return 2;
    }
    try {
        auto m = load_synth_model(argv[1]);
        m.dit->eval();
        torch::NoGradGuard ng;
        auto w = m.dit->patch_embedding->weight;  // [dim, in_dim, p0, p1, p2]
        std::printf("patch_embedding weight RMS per input channel:");
        for (int64_t c = 0; c < w.size(1); ++c) std::printf(" %.4g", w.select(1, c).pow(2).mean().sqrt().item<double>());
        std::printf("\n");
        std::vector<torch::Tensor> v;
        std::vector<std::string> p;
        for (uint64_t s = 777000; v.size() < 4; ++s) {
            auto sp = world::sample_spec(s);
            if (sp.objects.size() != 1) continue;
            v.push_back(world::render(sp, m.settings.size));
            p.push_back(world::prompt(sp));
        }
        auto x0 = torch::stack(v);
        torch::manual_seed(0);
        auto eps = torch::randn(x0.sizes());
        auto ctx = m.encode(p);
        for (double s : {0.5, 0.85, 0.95}) {
            auto xs = (1 - s) * x0 + s * eps;
            auto t = torch::full({4}, s * 1000);
            auto f = m.velocity(xs, t, ctx);
            auto rel = [&](int64_t dim) {
                auto g = m.velocity(xs.flip({dim}), t, ctx).flip({dim});
                return ((g - f).norm() / f.norm()).item<double>();
            };
            // A fixed random frame order: a model without temporal position information commutes with it too.
            auto perm = torch::randperm(xs.size(2), torch::TensorOptions().dtype(torch::kLong));
            auto inv = torch::argsort(perm);
            auto gp = m.velocity(xs.index_select(2, perm), t, ctx).index_select(2, inv);
            const double shuffle = ((gp - f).norm() / f.norm()).item<double>();
            std::printf("sigma %.2f: time reversal %.4f  horizontal flip %.4f  vertical flip %.4f  frame shuffle %.4f\n", s,
                        rel(2), rel(4), rel(3), shuffle);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
