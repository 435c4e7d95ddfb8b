// TrainConfig: the "train" fields are declared once, in train_fields(), which drives reading, writing and the
// per-field checks; cross-field checks follow in validate(). Curricula are merge patches over a base config.
#include "pipelines/train_config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/json_limits.h"
#include "core/fs.h"
#include "world/prompt.h"
#include "world/world.h"

namespace surgeon {
using json = nlohmann::json;

namespace {

// What a field accepts: a numeric interval (bounds closed or open; infinite = none) or a set of names (for a
// list, each element).
struct Accepts {
    double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    bool lo_open = false, hi_open = false;
    std::vector<std::string> names;
};
Accepts in(double lo, double hi, const char* brackets) {  // brackets: "[)", "()", "[]", "(]"
    Accepts a;
    a.lo = lo, a.hi = hi, a.lo_open = brackets[0] == '(', a.hi_open = brackets[1] == ')';
    return a;
}
Accepts at_least(double lo) { return in(lo, std::numeric_limits<double>::infinity(), "[)"); }
Accepts one_of(std::vector<std::string> names) {
    Accepts a;
    a.names = std::move(names);
    return a;
}

std::string choices_text(const std::vector<std::string>& names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) s += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
    return s;
}

// The one table of "train" fields: f(name, member, accepts).
template <class Config, class F>
void train_fields(Config& c, F&& f) {
    f("steps", c.steps, at_least(1));
    f("batch", c.batch, at_least(1));
    f("warmup", c.warmup, at_least(0));
    f("lr", c.lr, in(0, 1, "()"));
    f("min_lr_ratio", c.min_lr_ratio, in(0, 1, "[]"));
    f("weight_decay", c.weight_decay, at_least(0));
    f("beta1", c.beta1, in(0, 1, "[)"));
    f("beta2", c.beta2, in(0, 1, "[)"));
    f("grad_clip", c.grad_clip, in(0, std::numeric_limits<double>::infinity(), "()"));
    f("ema", c.ema, in(0, 1, "[)"));
    f("sigma_sampling", c.sigma_sampling, one_of({"logit_normal", "uniform"}));
    f("logit_mean", c.logit_mean, Accepts{});
    f("logit_std", c.logit_std, in(0, std::numeric_limits<double>::infinity(), "()"));
    f("cfg_dropout", c.cfg_dropout, in(0, 1, "[]"));
    f("seed", c.seed, Accepts{});
    f("log_every", c.log_every, at_least(1));
    f("checkpoint_every", c.checkpoint_every, at_least(1));
    f("dtype", c.dtype, one_of(names_of(kPrecisionNames)));
    f("device", c.device, Accepts{});
    f("max_shard_bytes", c.max_shard_bytes, at_least(1));
    f("init_from", c.init_from, Accepts{});
    f("optimizer", c.optimizer, one_of({"flat", "torch"}));
    f("exclude_motions", c.exclude_motions, Accepts{});
    f("position_init_std", c.position_init_std, in(0, 1, "[)"));
    f("text_pos_init_std", c.text_pos_init_std, in(0, 10, "[]"));
    f("swap_contrast", c.swap_contrast, at_least(0));
    f("swap_margin", c.swap_margin, at_least(0));
    f("swap_kinds", c.swap_kinds, one_of({"direction", "gradient", "binding"}));
    f("swap_sigma_min", c.swap_sigma_min, in(0, 1, "[)"));
}

void check_value(const char* name, double v, const Accepts& a) {
    const bool ok = (a.lo_open ? v > a.lo : v >= a.lo) && (a.hi_open ? v < a.hi : v <= a.hi);
    if (ok) return;
    if (std::isinf(a.hi)) fail("train config: {} must be {} {}, got {}", name, a.lo_open ? ">" : ">=", a.lo, v);
    fail("train config: {} must be in {}{}, {}{}, got {}", name, a.lo_open ? "(" : "[", a.lo, a.hi, a.hi_open ? ")" : "]", v);
}
void check_value(const char* name, const std::string& v, const Accepts& a) {
    SURGEON_CHECK(a.names.empty() || std::find(a.names.begin(), a.names.end(), v) != a.names.end(),
                  "train config: {} must be {}, got '{}'", name, choices_text(a.names), v);
}
void check_value(const char* name, const std::vector<std::string>& v, const Accepts& a) {
    for (const auto& e : v)
        SURGEON_CHECK(a.names.empty() || std::find(a.names.begin(), a.names.end(), e) != a.names.end(),
                      "train config: {}: unknown '{}' ({})", name, e, choices_text(a.names));
}
template <class T>
void check_value(const char* name, const T& v, const Accepts& a) {
    check_value(name, static_cast<double>(v), a);
}

// Cross-field checks (the per-field ones come from the table).
void validate(const TrainConfig& c) {
    train_fields(c, [](const char* name, const auto& v, const Accepts& a) { check_value(name, v, a); });
    SURGEON_CHECK(c.model.out_dim == 3, "train config: model out_dim must be 3 (RGB pixels), got {}", c.model.out_dim);
    const int64_t in_dim = expected_in_dim(c.position_channels, c.model.out_dim);
    SURGEON_CHECK(c.model.in_dim == in_dim, "train config: model in_dim must be {} (RGB{}), got {}", in_dim,
                  c.position_channels ? " + 3 position channels" : "; set \"position_channels\": true for 6", c.model.in_dim);
    SURGEON_CHECK(c.text_encoder.dim == c.model.text_dim, "train config: text_encoder.dim {} != model.text_dim {}",
                  c.text_encoder.dim, c.model.text_dim);
    SURGEON_CHECK(c.text_encoder.text_len <= c.model.text_len, "train config: text_encoder.text_len {} > model.text_len {}",
                  c.text_encoder.text_len, c.model.text_len);
    const auto& p = c.model.patch_size;
    SURGEON_CHECK(c.world.frames % p[0] == 0 && c.world.height % p[1] == 0 && c.world.width % p[2] == 0,
                  "train config: world size {}x{}x{} not divisible by the patch size", c.world.frames, c.world.height,
                  c.world.width);
    for (const auto& m : c.exclude_motions) {
        try {
            (void)world::parse_motion(m);
        } catch (const Error& e) {
            fail("train config: exclude_motions: {}", e.what());
        }
    }
    SURGEON_CHECK(c.exclude_motions.size() < static_cast<size_t>(world::kNumMotions),
                  "train config: exclude_motions leaves no motion to train on");
    SURGEON_CHECK(c.swap_contrast == 0 || !c.swap_kinds.empty(), "train config: swap_contrast needs at least one swap_kinds entry");
    SURGEON_CHECK(c.swap_sigma_min == 0 || c.swap_contrast > 0, "train config: swap_sigma_min {} needs swap_contrast > 0",
                  c.swap_sigma_min);
    SURGEON_CHECK(c.position_init_std == 0 || c.position_channels,
                  "train config: position_init_std needs \"position_channels\": true");
    check_world_seeds(c);
}

void check_keys(const json& j, const std::set<std::string>& known, const std::string& where) {
    SURGEON_CHECK(j.is_object(), "{}: expected a JSON object", where);
    for (const auto& [k, v] : j.items())
        SURGEON_CHECK(known.count(k), "{}: unknown key '{}'", where, k);
}

json parse_file(const std::string& path) {
    return parse_json_bounded(read_text_file(path), path);
}

}  // namespace

void check_world_seeds(const TrainConfig& c) {
    SURGEON_CHECK(c.seed < UINT64_MAX / world::kWorldSeedsPerTrainSeed, "train config: seed must be below {}, got {}",
                  UINT64_MAX / world::kWorldSeedsPerTrainSeed, c.seed);
    const uint64_t first = world::train_world_seed(c.seed, 0), count = static_cast<uint64_t>(c.steps * c.batch);
    SURGEON_CHECK(count <= world::kWorldSeedsPerTrainSeed,
                  "train config: steps x batch = {} clips exceeds the {} world seeds of one training seed", count,
                  world::kWorldSeedsPerTrainSeed);
    SURGEON_CHECK(world::avoids_eval_world_seeds(first, count),
                  "train config: seed {} draws world seeds {}..{}, which are SynthBench's held-out evaluation seeds "
                  "[{}, {}); pick another seed", c.seed, first, first + count - 1, world::kEvalWorldSeedBase,
                  world::kEvalWorldSeedBase + world::kWorldSeedsPerTrainSeed);
}

TrainConfig TrainConfig::from_json(const json& j) {
    check_keys(j, {"model", "text_encoder", "world", "sampling", "position_channels", "train"}, "train config");
    TrainConfig c;
    try {
        if (j.contains("model")) c.model = WanConfig::from_official_json(j["model"]);
        // world, text_encoder and sampling have the same schema as a model folder's surgeon.json.
        const SynthSettings st = SynthSettings::from_json(j);
        c.world = st.size;
        c.sampling = st.sampling;
        c.position_channels = st.position_channels;
        if (j.contains("text_encoder")) c.text_encoder = st.text_encoder;
        const json t = j.value("train", json::object());
        std::set<std::string> known;
        train_fields(c, [&](const char* name, auto& v, const Accepts&) {
            known.insert(name);
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_integral_v<V> && !std::is_same_v<V, bool>)  // get<> would truncate 2.5 to 2
                SURGEON_CHECK(!t.contains(name) || t.at(name).is_number_integer(),
                              "train config: train: '{}' must be an integer, got {}", name, t.at(name).dump());
            if (t.contains(name)) v = t.at(name).get<V>();
        });
        check_keys(t, known, "train config: train");
    } catch (const json::exception& e) {
        fail("train config: {}", e.what());
    }
    validate(c);
    return c;
}

json TrainConfig::to_json() const {
    SynthSettings st;
    st.size = world;
    st.text_encoder = text_encoder;
    st.sampling = sampling;
    st.position_channels = position_channels;
    json j = st.to_json();
    j["model"] = model.to_json();
    json t = json::object();
    train_fields(*this, [&](const char* name, const auto& v, const Accepts&) { t[name] = v; });
    j["train"] = t;
    return j;
}

std::vector<std::string> train_config_stages(const std::string& path) {
    const json j = parse_file(path);
    std::vector<std::string> names;
    if (!j.contains("stages")) return names;
    check_keys(j, {"about", "base", "stages"}, path);
    SURGEON_CHECK(j["stages"].is_array() && !j["stages"].empty(), "{}: \"stages\" must be a non-empty list", path);
    for (const auto& s : j["stages"]) {
        check_keys(s, {"stage", "about", "patch"}, path + ": stage");
        SURGEON_CHECK(s.contains("stage") && s["stage"].is_string(), "{}: every stage needs a \"stage\" name", path);
        names.push_back(s["stage"].get<std::string>());
    }
    return names;
}

TrainConfig load_train_config(const std::string& path, const std::string& stage, const std::vector<std::string>& set) {
    const auto names = train_config_stages(path);
    json j = parse_file(path);
    if (names.empty()) {
        SURGEON_CHECK(stage.empty(), "{}: not a curriculum (no \"stages\"), so --stage {} does not apply", path, stage);
    } else {
        SURGEON_CHECK(!stage.empty(), "{}: a curriculum; pick a stage with --stage ({})", path, choices_text(names));
        const auto at = std::find(names.begin(), names.end(), stage);
        SURGEON_CHECK(at != names.end(), "{}: no stage '{}' (stages: {})", path, stage, choices_text(names));
        json c = j.value("base", json::object());
        for (auto i = names.begin(); i <= at; ++i) c.merge_patch(j["stages"][i - names.begin()].value("patch", json::object()));
        j = c;
    }
    for (const auto& kv : set) {
        const auto eq = kv.find('=');
        SURGEON_CHECK(eq != std::string::npos && eq > 0, "--set expects KEY=VALUE, got '{}'", kv);
        const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
        j["train"][key] = json::accept(value) ? json::parse(value) : json(value);
    }
    try {
        return TrainConfig::from_json(j);
    } catch (const Error& e) {
        fail("{}{}: {}", path, stage.empty() ? "" : " stage " + stage, e.what());
    }
}

}  // namespace surgeon
