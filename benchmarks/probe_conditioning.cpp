// Does a synth model use each part of its prompt? Flow-matching loss on ground-truth clips of one object in linear
// motion, per noise level, with the true prompt and with one attribute changed (direction flipped, axis rotated,
// colour changed, motion removed, empty prompt). A model that uses an attribute has a clearly higher loss when it
// is wrong; equal losses mean the model ignores it (found this way: the stage-3 teacher ignored the direction sign).
// Two more tables: clips on a gradient background with the gradient's colours swapped (the mirrored background's
// prompt), and two-object clips with the objects' colours or shapes exchanged (attribute binding).
// Usage: probe_conditioning [MODEL_DIR] [N_CLIPS] [DEVICE]
#include <cstdio>
#include <map>
#include "pipelines/synth_model.h"
#include "world/prompt.h"
#include "world/world.h"
using namespace surgeon;
using namespace surgeon::world;
static int run(int argc, char** argv) {
    std::string dir = argc > 1 ? argv[1] : "models/synth-teacher";
    int n = argc > 2 ? std::atoi(argv[2]) : 16;
    const std::string device = argc > 3 ? argv[3] : "cpu";
    if (device.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
        std::printf("CUDA is not available on this machine.\n");
        return 0;
    }
    auto m = load_synth_model(dir, torch::Device(device));
    m.dit->eval();
    torch::NoGradGuard ng;
    std::vector<WorldSpec> specs;
    for (uint64_t s = 777000; specs.size() < (size_t)n; ++s) {
        auto sp = sample_spec(s);
        if (sp.objects.size() != 1) continue;
        auto mo = sp.objects[0].motion;
        if (mo == Motion::Left || mo == Motion::Right || mo == Motion::Up || mo == Motion::Down) specs.push_back(sp);
    }
    std::vector<torch::Tensor> v;
    std::map<std::string, std::vector<std::string>> P;
    auto rot = [](Motion m) { switch (m) { case Motion::Left: return Motion::Up; case Motion::Right: return Motion::Down; case Motion::Up: return Motion::Left; default: return Motion::Right; } };
    for (auto& sp : specs) {
        v.push_back(render(sp, m.settings.size));
        P["true"].push_back(prompt(sp));
        auto a = sp; a.objects[0].motion = reversed(a.objects[0].motion); P["dir flipped"].push_back(prompt(a));
        auto b = sp; b.objects[0].motion = rot(b.objects[0].motion); P["axis rotated"].push_back(prompt(b));
        auto c = sp; c.objects[0].colour = Colour((int(c.objects[0].colour) + 3) % 8); P["colour changed"].push_back(prompt(c));
        auto d = sp; d.objects[0].motion = Motion::Still; d.objects[0].speed = Speed::Slow; P["still"].push_back(prompt(d));
        P["empty"].push_back("");
    }
    auto x0 = torch::stack(v).to(m.dit->device());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    auto eps = at::randn(x0.sizes(), gen).to(x0.device());
    {
        auto ct = m.encode(P["true"]), cf = m.encode(P["dir flipped"]), cr = m.encode(P["axis rotated"]), cc = m.encode(P["colour changed"]);
        std::printf("context rel diff: flipped %.4f rotated %.4f colour %.4f\n", ((ct-cf).norm()/ct.norm()).item<double>(), ((ct-cr).norm()/ct.norm()).item<double>(), ((ct-cc).norm()/ct.norm()).item<double>());
        auto xs = 0.15 * x0.slice(0,0,8) + 0.85 * eps.slice(0,0,8);
        auto tt = torch::full({8}, 850.0);
        auto vt = m.velocity(xs, tt, ct.slice(0,0,8)), vf = m.velocity(xs, tt, cf.slice(0,0,8)), vr = m.velocity(xs, tt, cr.slice(0,0,8));
        std::printf("output rel diff at sigma .85: flipped %.4f rotated %.4f\n", ((vt-vf).norm()/vt.norm()).item<double>(), ((vt-vr).norm()/vt.norm()).item<double>());
    }
    // Loss per sigma for each prompt set of `P` on `clips`, one line each.
    auto table = [&](const torch::Tensor& clips, std::map<std::string, std::vector<std::string>>& P,
                     const std::vector<std::string>& keys) {
        const int64_t count = clips.size(0);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
        auto eps = at::randn(clips.sizes(), gen).to(clips.device());
        std::printf("%-18s", "sigma");
        for (double s : {0.3, 0.5, 0.7, 0.85, 0.95}) std::printf(" %8.2f", s);
        std::printf("\n");
        for (const auto& key : keys) {
            std::printf("%-18s", key.c_str());
            auto ctx = m.encode(P[key]);
            for (double s : {0.3, 0.5, 0.7, 0.85, 0.95}) {
                auto xs = (1 - s) * clips + s * eps;
                double tot = 0;
                for (int64_t i = 0; i < count; i += 8) {
                    auto sl = [&](const torch::Tensor& t) { return t.slice(0, i, std::min(count, i + 8)); };
                    auto out = m.velocity(sl(xs), torch::full({sl(xs).size(0)}, s * 1000.0), sl(ctx));
                    tot += torch::mse_loss(out, sl(eps) - sl(clips), at::Reduction::Sum).item<double>();
                }
                std::printf(" %8.5f", tot / clips.numel());
            }
            std::printf("\n");
            std::fflush(stdout);
        }
    };
    std::printf("%d one-object linear-motion clips, e.g. \"%s\"\n", n, P["true"][0].c_str());
    table(x0, P, {"true", "dir flipped", "axis rotated", "colour changed", "still", "empty"});

    // Gradient backgrounds: the two colours swapped describe the mirrored background.
    std::vector<torch::Tensor> vg;
    std::map<std::string, std::vector<std::string>> G;
    for (uint64_t s = 888000; vg.size() < (size_t)n; ++s) {
        auto sp = sample_spec(s);
        if (sp.background.kind == BackgroundKind::Solid || sp.background.first == sp.background.second) continue;
        vg.push_back(render(sp, m.settings.size));
        G["true"].push_back(prompt(sp));
        auto a = sp; std::swap(a.background.first, a.background.second); G["gradient mirrored"].push_back(prompt(a));
        auto b = sp; b.background.kind = BackgroundKind::Solid; b.background.second = b.background.first; G["solid first"].push_back(prompt(b));
    }
    // The DiT's cross-attention sees the context as a set: how far is the reordered prompt's set from the true one
    // (mean distance of each real token's vector to its nearest true one, relative to the mean norm; 0 = a bag of
    // words)?
    auto set_distance = [&](const std::vector<std::string>& a, const std::vector<std::string>& b) {
        double tot = 0;
        for (size_t i = 0; i < a.size(); ++i) {
            auto ia = m.tokenizer.encode_batch({a[i]}, m.settings.text_encoder.text_len).to(m.dit->device());
            auto ib = m.tokenizer.encode_batch({b[i]}, m.settings.text_encoder.text_len).to(m.dit->device());
            auto ca = m.text_encoder->forward(ia)[0].index({ia[0].ne(0)}), cb = m.text_encoder->forward(ib)[0].index({ib[0].ne(0)});
            tot += torch::cdist(cb, ca).amin(1).mean().item<double>() / ca.norm(2, 1).mean().item<double>();
        }
        return tot / static_cast<double>(a.size());
    };
    std::printf("%d gradient-background clips, e.g. \"%s\"\n", n, G["true"][0].c_str());
    std::printf("context set distance, gradient mirrored: %.4f\n", set_distance(G["true"], G["gradient mirrored"]));
    table(torch::stack(vg).to(m.dit->device()), G, {"true", "gradient mirrored", "solid first"});

    // Two objects with different colours and shapes: exchanging them keeps the words, changes the binding.
    std::vector<torch::Tensor> vb;
    std::map<std::string, std::vector<std::string>> Bp;
    for (uint64_t s = 999000; vb.size() < (size_t)n; ++s) {
        auto sp = sample_spec(s);
        if (sp.objects.size() != 2 || sp.objects[0].colour == sp.objects[1].colour || sp.objects[0].shape == sp.objects[1].shape) continue;
        vb.push_back(render(sp, m.settings.size));
        Bp["true"].push_back(prompt(sp));
        auto a = sp; std::swap(a.objects[0].colour, a.objects[1].colour); Bp["colours exchanged"].push_back(prompt(a));
        auto b = sp; std::swap(b.objects[0].shape, b.objects[1].shape); Bp["shapes exchanged"].push_back(prompt(b));
    }
    std::printf("%d two-object clips, e.g. \"%s\"\n", n, Bp["true"][0].c_str());
    std::printf("context set distance, colours exchanged: %.4f, shapes exchanged: %.4f\n",
                set_distance(Bp["true"], Bp["colours exchanged"]), set_distance(Bp["true"], Bp["shapes exchanged"]));
    table(torch::stack(vb).to(m.dit->device()), Bp, {"true", "colours exchanged", "shapes exchanged"});
    return 0;
}

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
