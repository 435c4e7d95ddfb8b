// Initial weights of a training run (see train_init.h).
#include "pipelines/train_init.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/error.h"
#include "model/model_io.h"

namespace surgeon {

namespace {

// Wan's init_weights: xavier-uniform Linear weights, zero biases, N(0, 0.02) for the text/time embeddings, zero head.
void init_wan_weights(WanModel& m) {
    torch::NoGradGuard ng;
    for (auto& mod : m->modules(false)) {
        if (auto* l = mod->as<torch::nn::LinearImpl>()) {
            torch::nn::init::xavier_uniform_(l->weight);
            if (l->bias.defined()) l->bias.zero_();
        }
    }
    torch::nn::init::xavier_uniform_(m->patch_embedding->weight.view({m->patch_embedding->weight.size(0), -1}));
    for (auto& p : m->text_embedding->parameters())
        if (p.dim() == 2) torch::nn::init::normal_(p, 0.0, 0.02);
    for (auto& p : m->time_embedding->parameters())
        if (p.dim() == 2) torch::nn::init::normal_(p, 0.0, 0.02);
    m->head->head->weight.zero_();
}

// The source's DiT weights in fp32, the patch embedding widened / redrawn for position channels as configured.
TensorMap warm_start_dit_weights(const TrainConfig& c, const SynthModel& src, const SynthModel& m) {
    TensorMap dit;
    for (const auto& [n, t] : state_dict(*src.dit)) dit[n] = t.detach().to(torch::kFloat32);
    if (c.position_channels && !src.settings.position_channels) {
        // Adding position channels to a model trained without them: the patch embedding gets zero weights for
        // the new input channels, so the warm-started model computes exactly what the source did.
        auto& w = dit.at("patch_embedding.weight");  // [dim, 3, p0, p1, p2]
        auto wide = torch::zeros_like(m.dit->patch_embedding->weight.detach().cpu());
        SURGEON_CHECK(wide.size(1) == w.size(1) + 3, "train: --init-from {}: patch_embedding.weight has {} input channels, expected {}",
                      c.init_from, w.size(1), wide.size(1) - 3);
        wide.narrow(1, 0, w.size(1)).copy_(w);
        w = wide;
        std::fprintf(stderr, "train: --init-from %s has no position channels; added 3, zero-initialised\n",
                     c.init_from.c_str());
    }
    if (c.position_init_std > 0) {
        auto& w = dit.at("patch_embedding.weight");  // [dim, 3 + 3, p0, p1, p2]
        auto gen = at::detail::createCPUGenerator(c.seed ^ 0x9051u);
        w = w.clone();
        w.narrow(1, w.size(1) - 3, 3).normal_(0.0, c.position_init_std, gen);
        std::fprintf(stderr, "train: position-channel weights drawn from N(0, %g^2)\n", c.position_init_std);
    }
    return dit;
}

void warm_start(const TrainConfig& c, SynthModel& m) {
    // Strict: every tensor of the folder must match this config's model by name, shape and (after the fp32
    // up-cast of the stored bf16) dtype; the errors name the tensor.
    SynthModel src = load_synth_model(c.init_from, torch::kCPU, Precision::Float32);
    SURGEON_CHECK(src.settings.text_encoder.vocab_size == m.settings.text_encoder.vocab_size,
                  "train: --init-from {}: text encoder vocabulary {} != this world's {}", c.init_from,
                  src.settings.text_encoder.vocab_size, m.settings.text_encoder.vocab_size);
    load_state_dict_strict(*m.dit, warm_start_dit_weights(c, src, m), {}, c.init_from);
    world::load_text_encoder_state(m.text_encoder, world::text_encoder_state(src.text_encoder));
    if (c.text_pos_init_std > 0) {
        torch::NoGradGuard ng;
        auto gen = at::detail::createCPUGenerator(c.seed ^ 0x7e47u);
        auto params = m.text_encoder->named_parameters();
        auto* pos = params.find("pos_embedding");
        SURGEON_CHECK(pos != nullptr, "train: the text encoder has no pos_embedding");
        pos->copy_(torch::empty_like(*pos).normal_(0.0, c.text_pos_init_std, gen));
        std::fprintf(stderr, "train: text position embeddings drawn from N(0, %g^2)\n", c.text_pos_init_std);
    }
}

}  // namespace

SynthModel init_synth_model(const TrainConfig& c) {
    torch::manual_seed(c.seed);
    SynthModel m;
    m.settings.size = c.world;
    m.settings.text_encoder = c.text_encoder;
    m.settings.text_encoder.vocab_size = m.tokenizer.vocab_size();
    m.settings.sampling = c.sampling;
    m.settings.position_channels = c.position_channels;
    m.dit = WanModel(c.model);
    init_wan_weights(m.dit);
    m.text_encoder = world::TextEncoder(m.settings.text_encoder);
    return m;
}

SynthModel initial_train_model(const TrainConfig& c) {
    SURGEON_CHECK(c.position_init_std == 0 || !c.init_from.empty(),
                  "train: position_init_std applies to a warm start; a fresh model's patch embedding is random already");
    SURGEON_CHECK(c.text_pos_init_std == 0 || !c.init_from.empty(),
                  "train: text_pos_init_std applies to a warm start; a fresh text encoder's positions are N(0, 1) already");
    SynthModel m = init_synth_model(c);
    if (!c.init_from.empty()) warm_start(c, m);
    return m;
}

}  // namespace surgeon
