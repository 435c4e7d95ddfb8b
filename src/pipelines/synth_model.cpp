// Synthetic-world text-to-video model: folder I/O, prompt encoding, generation.
#include "pipelines/synth_model.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"
#include "surgery/student_checkpoint.h"
#include "core/rng.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

json sampling_to_json(const SampleOptions& o) {
    return {{"solver", surgeon::to_string(o.solver)}, {"steps", o.steps}, {"shift", o.shift}, {"guidance", o.guidance},
            {"eta", o.eta}};
}

json SynthSettings::to_json() const {
    json j{{"world", {{"frames", size.frames}, {"height", size.height}, {"width", size.width}}},
           {"text_encoder", world::to_json(text_encoder)},
           {"sampling", sampling_to_json(sampling)}};
    if (position_channels) j["position_channels"] = true;  // absent = false: older folders load unchanged
    return j;
}

namespace {
// Unknown keys and non-integer sizes are refused (a typo must not silently keep a default).
void check_settings_keys(const json& j, const char* name, std::initializer_list<const char*> known) {
    if (!j.contains(name)) return;
    SURGEON_CHECK(j[name].is_object(), "surgeon.json: '{}' must be an object", name);
    for (const auto& [k, v] : j[name].items())
        SURGEON_CHECK(std::find_if(known.begin(), known.end(), [&key = k](const char* n) { return key == n; }) != known.end(),
                      "surgeon.json: {}: unknown key '{}'", name, k);
}
}  // namespace

SynthSettings SynthSettings::from_json(const json& j) {
    SynthSettings s;
    check_settings_keys(j, "world", {"frames", "height", "width"});
    check_settings_keys(j, "sampling", {"solver", "steps", "shift", "guidance", "eta"});
    for (const char* k : {"frames", "height", "width"})
        SURGEON_CHECK(!j.contains("world") || !j["world"].contains(k) || j["world"][k].is_number_integer(),
                      "surgeon.json: world.{} must be an integer, got {}", k, j["world"][k].dump());
    try {
        if (j.contains("world")) {
            s.size.frames = j["world"].value("frames", s.size.frames);
            s.size.height = j["world"].value("height", s.size.height);
            s.size.width = j["world"].value("width", s.size.width);
        }
        s.position_channels = j.value("position_channels", false);
        if (j.contains("text_encoder")) s.text_encoder = world::text_encoder_config_from_json(j["text_encoder"]);
        if (j.contains("sampling")) {
            const auto& p = j["sampling"];
            s.sampling.solver = parse_solver(p.value("solver", std::string("unipc")));
            s.sampling.steps = p.value("steps", s.sampling.steps);
            s.sampling.shift = p.value("shift", s.sampling.shift);
            s.sampling.guidance = p.value("guidance", s.sampling.guidance);
            s.sampling.eta = p.value("eta", s.sampling.eta);
        }
    } catch (const json::exception& e) {
        fail("surgeon.json: {}", e.what());
    }
    SURGEON_CHECK(s.size.frames > 0 && s.size.height > 0 && s.size.width > 0 && s.size.frames <= 1024 &&
                      s.size.height <= 4096 && s.size.width <= 4096,
                  "surgeon.json: world size {}x{}x{} outside 1..1024 frames x 1..4096 x 1..4096 pixels", s.size.frames,
                  s.size.height, s.size.width);
    return s;
}

torch::Tensor SynthModel::encode(const std::vector<std::string>& prompts) {
    auto ids = tokenizer.encode_batch(prompts, settings.text_encoder.text_len).to(dit->device());  // [B, Lt]
    return text_encoder->forward(ids);  // [B, Lt, text_dim]
}

torch::Tensor SynthModel::noise(uint64_t seed) const {
    const auto& c = dit->config();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randn({1, c.out_dim, settings.size.frames, settings.size.height, settings.size.width}, gen);
}

torch::Tensor SynthModel::condition(int64_t batch) const {
    if (!settings.position_channels) return {};
    return position_planes(settings.size.frames, settings.size.height, settings.size.width)
        .unsqueeze(0)
        .expand({batch, -1, -1, -1, -1})
        .to(dit->device());
}

torch::Tensor SynthModel::velocity(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context,
                                   const torch::Tensor& y_in, const ActivationTap* tap) {
    const auto y = y_in.defined() ? y_in : condition(x.size(0));
    return dit->forward(y.defined() ? torch::cat({x.to(y.device(), torch::kFloat32), y}, 1) : x, t, context, tap);
}

torch::Tensor position_planes(int64_t frames, int64_t height, int64_t width) {
    SURGEON_CHECK(frames > 0 && height > 0 && width > 0, "position planes need a positive size, got {}x{}x{}", frames,
                  height, width);
    auto ramp = [](int64_t n) {  // n pixel centres mapped linearly onto [-1, 1]
        return n == 1 ? torch::zeros({1}) : torch::linspace(-1.0, 1.0, n);
    };
    auto t = ramp(frames).view({frames, 1, 1}).expand({frames, height, width});
    auto i = ramp(height).view({1, height, 1}).expand({frames, height, width});
    auto j = ramp(width).view({1, 1, width}).expand({frames, height, width});
    return torch::stack({t, i, j}, 0).contiguous();  // [3, T, H, W]
}

int64_t expected_in_dim(bool position_channels, int64_t out_dim) { return out_dim + (position_channels ? 3 : 0); }

torch::Tensor SynthModel::generate(const std::vector<std::string>& prompts, const std::vector<uint64_t>& seeds,
                                   const SampleOptions& options, const StepCallback& on_step) {
    SURGEON_CHECK(prompts.size() == seeds.size() && !prompts.empty(), "generate: one seed per prompt needed");
    torch::NoGradGuard ng;
    dit->eval();
    text_encoder->eval();
    auto ctx = encode(prompts);
    auto neg = encode(std::vector<std::string>(prompts.size(), ""));
    std::vector<torch::Tensor> ns;
    for (auto s : seeds) ns.push_back(noise(s));
    // Ancestral steps (eta > 0): each video's fresh noise from its own generator, seeded from its seed.
    std::vector<at::Generator> gens;
    for (auto s : seeds) gens.push_back(at::make_generator<at::CPUGeneratorImpl>(splitmix64(s ^ 0xA5CE57A1ULL)));
    StepNoise step_noise = [&](int64_t) {
        std::vector<torch::Tensor> zs;
        for (auto& g : gens) zs.push_back(at::randn(ns[0].sizes(), g));
        return torch::cat(zs, 0);
    };
    auto x = sample_video(dit, torch::cat(ns, 0), ctx, neg, options, on_step, condition(static_cast<int64_t>(prompts.size())),
                          step_noise);
    return x.clamp(-1, 1).to(torch::kCPU);  // [B, 3, T, H, W]
}

void SynthModel::to(torch::Device device) {
    dit->to(device);
    text_encoder->to(device);
}

bool is_synth_model_folder(const std::string& dir) {
    return fs::exists(fs::path(dir) / "text_encoder.safetensors") && fs::exists(fs::path(dir) / "surgeon.json");
}

SynthModel load_synth_model(const std::string& dir, torch::Device device, Precision precision,
                            const std::string& plan_path, uint64_t seed) {
    SURGEON_CHECK(is_synth_model_folder(dir), "{}: not a synthetic-world model folder (needs text_encoder.safetensors and surgeon.json)", dir);
    SynthModel m;
    try {
        m.settings = SynthSettings::from_json(json::parse(read_text_file((fs::path(dir) / "surgeon.json").string())));
    } catch (const json::exception& e) {
        fail("{}/surgeon.json: invalid JSON ({})", dir, e.what());
    }
    m.dit = load_model_or_student(dir, plan_path, seed, device, precision).loaded.model;
    const auto& dc = m.dit->config();
    SURGEON_CHECK(dc.in_dim == expected_in_dim(m.settings.position_channels, dc.out_dim),
                  "{}: DiT in_dim {} does not fit out_dim {} {} position channels (surgeon.json position_channels: {}); expected in_dim {}",
                  dir, dc.in_dim, dc.out_dim, m.settings.position_channels ? "plus 3" : "without", m.settings.position_channels,
                  expected_in_dim(m.settings.position_channels, dc.out_dim));
    auto cfg = m.settings.text_encoder;
    if (cfg.vocab_size == 0) cfg.vocab_size = m.tokenizer.vocab_size();
    SURGEON_CHECK(cfg.dim == m.dit->config().text_dim, "{}: text encoder dim {} != DiT text_dim {}", dir, cfg.dim,
                  m.dit->config().text_dim);
    m.text_encoder = world::TextEncoder(cfg);
    world::load_text_encoder_state(m.text_encoder, load_safetensors((fs::path(dir) / "text_encoder.safetensors").string()));
    m.text_encoder->to(device);
    return m;
}

void save_synth_model(const SynthModel& m, const std::string& dir, torch::ScalarType dtype, uint64_t max_shard_bytes) {
    if (plan_of(m.dit).num_converted() > 0)
        save_student(m.dit, dir, dtype, max_shard_bytes);  // a student: phi + plan (metadata and plan.json)
    else
        save_wan_model(m.dit, dir, dtype, max_shard_bytes);
    auto enc = m.text_encoder;
    TensorMap te;
    for (const auto& [n, t] : world::text_encoder_state(enc)) te[n] = t.detach().to(torch::kCPU, torch::kFloat32);
    save_safetensors((fs::path(dir) / "text_encoder.safetensors").string(), te);
    atomic_write((fs::path(dir) / "surgeon.json").string(), [&](std::ostream& o) { o << m.settings.to_json().dump(1) << "\n"; });
}

}  // namespace surgeon
