// Attention plan: enums, JSON round trip (versioned, unknown keys rejected), uniform plans and validation.
#include "attention/attention_plan.h"

#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json_limits.h"
#include "core/fs.h"

namespace surgeon {
using json = nlohmann::json;

AttentionKind parse_attention_kind(const std::string& s) { return parse_name(kAttentionKindNames, s, "attention kind"); }
std::string to_string(AttentionKind k) { return name_of(kAttentionKindNames, k); }

Stabilizer parse_stabilizer(const std::string& s) { return parse_name(kStabilizerNames, s, "stabilizer"); }
std::string to_string(Stabilizer s) { return name_of(kStabilizerNames, s); }

PlanEntry PlanEntry::normalized(int64_t D) const {
    PlanEntry r;
    r.kind = kind;
    if (kind == AttentionKind::Hybrid) r.rate = rate;
    if (kind == AttentionKind::Chunked) {
        r.chunk = chunk;
        r.overlap = overlap;
        r.causal = causal;
    }
    if (has_linear_branch()) r.feature_map = D > 0 ? feature_map.resolved(D) : feature_map;
    if (has_linear_branch() && has_softmax_branch()) r.stabilizer = stabilizer;
    return r;
}

bool PlanEntry::operator==(const PlanEntry& o) const {
    return kind == o.kind && rate == o.rate && chunk == o.chunk && overlap == o.overlap && causal == o.causal &&
           feature_map == o.feature_map && stabilizer == o.stabilizer;
}

std::string PlanEntry::describe() const {
    std::string s = to_string(kind);
    if (kind == AttentionKind::Hybrid) s += fmt::format(" R={}", rate);
    if (kind == AttentionKind::Chunked)
        s += fmt::format(" Tc={} To={}{}", chunk, overlap, causal ? " causal" : "");
    if (has_linear_branch()) {
        s += " " + to_string(feature_map.kind);
        if (feature_map.kind == FeatureMapKind::Poly)
            s += fmt::format("(h={},P={})", feature_map.hidden, feature_map.parts);
    }
    if (has_linear_branch() && has_softmax_branch()) s += " " + to_string(stabilizer);
    return s;
}

int64_t AttentionPlan::num_converted() const {
    int64_t n = 0;
    for (const auto& e : blocks) n += e.kind != AttentionKind::Softmax;
    return n;
}

json AttentionPlan::to_json() const {
    json arr = json::array();
    for (size_t i = 0; i < blocks.size(); ++i) {
        const auto e = blocks[i].normalized();
        json b = {{"block", i}, {"kind", to_string(e.kind)}};
        if (e.kind == AttentionKind::Hybrid) b["rate"] = e.rate;
        if (e.kind == AttentionKind::Chunked) {
            b["chunk"] = e.chunk;
            b["overlap"] = e.overlap;
            b["causal"] = e.causal;
        }
        if (e.has_linear_branch()) {
            json fm = {{"kind", to_string(e.feature_map.kind)}, {"head_dim", e.feature_map.head_dim}};
            if (e.feature_map.kind == FeatureMapKind::Poly) {
                fm["hidden"] = e.feature_map.hidden;
                fm["parts"] = e.feature_map.parts;
            }
            b["feature_map"] = fm;
        }
        if (e.has_linear_branch() && e.has_softmax_branch()) b["stabilizer"] = to_string(e.stabilizer);
        arr.push_back(b);
    }
    return {{"format", "surgeon.attention_plan"}, {"version", kVersion}, {"num_blocks", blocks.size()}, {"blocks", arr}};
}

namespace {
void check_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) {
    for (auto it = j.begin(); it != j.end(); ++it)
        SURGEON_CHECK(allowed.count(it.key()), "{}: unknown key '{}'", where, it.key());
}
template <typename T>
T get(const json& j, const char* key, const std::string& where, T def) {
    if (!j.contains(key)) return def;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)  // nlohmann would truncate 2.5 to 2
        SURGEON_CHECK(!j.at(key).is_number() || j.at(key).is_number_integer(),
                      "{}: field '{}' must be an integer, got {}", where, key, j.at(key).dump());
    try {
        return j.at(key).get<T>();
    } catch (const json::exception&) {
        fail("{}: field '{}' has the wrong type (got {})", where, key, j.at(key).dump());
    }
}
// Bounds that hold for any model, checked before anything is sized from a plan (a plan is untrusted input):
// a model's own bounds (hidden <= 16 x head dim, rate <= tokens) are checked by validate_entry.
constexpr int64_t kMaxPlanHeadDim = 4096, kMaxPlanTokens = int64_t{1} << 24;
void check_entry_bounds(const PlanEntry& e, const std::string& where) {  // upper bounds; validate_entry checks the rest
    SURGEON_CHECK(e.rate <= kMaxPlanTokens, "{}: rate must be at most {}, got {}", where, kMaxPlanTokens, e.rate);
    SURGEON_CHECK(e.chunk <= kMaxPlanTokens, "{}: chunk must be at most {}, got {}", where, kMaxPlanTokens, e.chunk);
    SURGEON_CHECK(e.overlap <= kMaxPlanTokens, "{}: overlap must be at most {}, got {}", where, kMaxPlanTokens, e.overlap);
    const auto& fm = e.feature_map;
    SURGEON_CHECK(fm.hidden <= 16 * kMaxPlanHeadDim, "{}: feature_map hidden must be at most {}, got {}", where,
                  16 * kMaxPlanHeadDim, fm.hidden);
    SURGEON_CHECK(fm.parts <= 8, "{}: feature_map parts must be at most 8, got {}", where, fm.parts);
}
}  // namespace

AttentionPlan AttentionPlan::from_json(const json& j, const std::string& source) {
    SURGEON_CHECK(j.is_object(), "{}: attention plan must be a JSON object", source);
    check_keys(j, {"format", "version", "num_blocks", "blocks"}, source);
    const int version = get<int>(j, "version", source, -1);
    SURGEON_CHECK(version == kVersion, "{}: attention plan version: expected {}, got {}", source, kVersion, version);
    SURGEON_CHECK(j.contains("blocks") && j["blocks"].is_array(), "{}: field 'blocks' must be an array", source);
    AttentionPlan plan;
    const auto& arr = j["blocks"];
    for (size_t i = 0; i < arr.size(); ++i) {
        const auto& b = arr[i];
        const std::string where = fmt::format("{}: block {}", source, i);
        SURGEON_CHECK(b.is_object(), "{}: entry must be an object", where);
        check_keys(b, {"block", "kind", "rate", "chunk", "overlap", "causal", "feature_map", "stabilizer"}, where);
        const auto idx = get<int64_t>(b, "block", where, static_cast<int64_t>(i));
        SURGEON_CHECK(idx == static_cast<int64_t>(i), "{}: field 'block': expected {} (entries in order), got {}", where,
                      i, idx);
        PlanEntry e;
        SURGEON_CHECK(b.contains("kind"), "{}: missing field 'kind'", where);
        e.kind = parse_attention_kind(get<std::string>(b, "kind", where, ""));
        e.rate = get<int64_t>(b, "rate", where, 1);
        e.chunk = get<int64_t>(b, "chunk", where, 1);
        e.overlap = get<int64_t>(b, "overlap", where, 0);
        e.causal = get<bool>(b, "causal", where, false);
        e.stabilizer = parse_stabilizer(get<std::string>(b, "stabilizer", where, "lse"));
        if (b.contains("feature_map")) {
            const auto& fm = b["feature_map"];
            const std::string fw = where + " feature_map";
            SURGEON_CHECK(fm.is_object(), "{}: must be an object", fw);
            check_keys(fm, {"kind", "hidden", "parts", "head_dim"}, fw);
            e.feature_map.kind = parse_feature_map_kind(get<std::string>(fm, "kind", fw, "poly"));
            e.feature_map.hidden = get<int64_t>(fm, "hidden", fw, 0);
            e.feature_map.parts = get<int64_t>(fm, "parts", fw, 2);
            e.feature_map.head_dim = get<int64_t>(fm, "head_dim", fw, 0);
            SURGEON_CHECK(e.feature_map.head_dim <= kMaxPlanHeadDim, "{}: head_dim must be at most {}, got {}", fw,
                          kMaxPlanHeadDim, e.feature_map.head_dim);
        }
        check_entry_bounds(e, where);
        plan.blocks.push_back(e.normalized());
    }
    if (j.contains("num_blocks")) {
        const auto n = get<int64_t>(j, "num_blocks", source, 0);
        SURGEON_CHECK(n == static_cast<int64_t>(plan.blocks.size()), "{}: num_blocks is {} but 'blocks' has {} entries",
                      source, n, plan.blocks.size());
    }
    return plan;
}

std::string AttentionPlan::dump() const { return to_json().dump(1); }

AttentionPlan AttentionPlan::parse(const std::string& text, const std::string& source) {
    return from_json(parse_json_bounded(text, source), source);
}

void AttentionPlan::save(const std::string& path) const {
    atomic_write(path, [&](std::ostream& o) { o << dump() << "\n"; });
}

AttentionPlan AttentionPlan::load(const std::string& path) { return parse(read_text_file(path), path); }

AttentionPlan uniform_plan(int64_t num_layers, int64_t head_dim, const PlanEntry& entry,
                           const std::vector<int64_t>& blocks) {
    AttentionPlan plan;
    plan.blocks.assign(num_layers, PlanEntry{});
    const PlanEntry e = entry.normalized(head_dim);
    if (blocks.empty()) {
        for (auto& b : plan.blocks) b = e;
    } else {
        for (int64_t i : blocks) {
            SURGEON_CHECK(i >= 0 && i < num_layers, "block {} out of range (model has {} blocks: 0..{})", i, num_layers,
                          num_layers - 1);
            plan.blocks[i] = e;
        }
    }
    return plan;
}

std::vector<int64_t> parse_block_list(const std::string& s, int64_t num_layers) {
    if (s == "all" || s.empty()) return {};
    std::vector<int64_t> out;
    std::set<int64_t> seen;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        int64_t v = 0;
        size_t pos = 0;
        try {
            v = std::stoll(item, &pos);
        } catch (const std::exception&) {
            pos = 0;
        }
        SURGEON_CHECK(pos == item.size() && !item.empty(), "--blocks: '{}' is not a block index (expected all or i,j,...)",
                      item);
        SURGEON_CHECK(v >= 0 && v < num_layers, "--blocks: block {} out of range (model has {} blocks: 0..{})", v,
                      num_layers, num_layers - 1);
        SURGEON_CHECK(seen.insert(v).second, "--blocks: block {} listed twice", v);
        out.push_back(v);
    }
    return out;
}

void validate_entry(const PlanEntry& e, int64_t head_dim, const TokenGrid* grid, const std::string& where) {
    if (e.kind == AttentionKind::Hybrid) {
        SURGEON_CHECK(e.rate >= 1, "{}: hybrid rate must be >= 1, got {}", where, e.rate);
        if (grid)
            SURGEON_CHECK(e.rate <= grid->tokens(), "{}: hybrid rate {} exceeds the number of tokens ({})", where,
                          e.rate, grid->tokens());
    }
    if (e.kind == AttentionKind::Chunked) {
        SURGEON_CHECK(e.chunk >= 1, "{}: chunk must be >= 1 latent frame, got {}", where, e.chunk);
        SURGEON_CHECK(e.overlap >= 0, "{}: overlap must be >= 0 frames, got {}", where, e.overlap);
        if (grid) {
            SURGEON_CHECK(e.chunk <= grid->frames, "{}: chunk of {} latent frames is longer than the video ({} frames)",
                          where, e.chunk, grid->frames);
            SURGEON_CHECK(e.overlap < grid->frames || e.chunk == grid->frames,
                          "{}: overlap of {} frames must be shorter than the video ({} frames)", where, e.overlap,
                          grid->frames);
        }
    }
    if (e.has_linear_branch()) {
        const auto& fm = e.feature_map;
        SURGEON_CHECK(fm.head_dim == 0 || fm.head_dim == head_dim,
                      "{}: feature map {} is sized for head dim {}, but the model's head dim is {}", where,
                      to_string(fm.kind), fm.head_dim, head_dim);
        if (fm.kind == FeatureMapKind::Poly) {
            SURGEON_CHECK(fm.parts >= 1 && fm.parts <= 8, "{}: poly feature map parts must be in 1..8, got {}", where,
                          fm.parts);
            SURGEON_CHECK(fm.hidden >= 0, "{}: poly feature map hidden width must be >= 1 (0 = 2*head_dim), got {}",
                          where, fm.hidden);
            SURGEON_CHECK(fm.hidden <= 16 * head_dim, "{}: poly feature map hidden width {} exceeds 16 x head dim ({})",
                          where, fm.hidden, 16 * head_dim);
        }
    }
}

void validate_plan(const AttentionPlan& plan, int64_t num_layers, int64_t head_dim, const TokenGrid* grid) {
    SURGEON_CHECK(static_cast<int64_t>(plan.blocks.size()) == num_layers,
                  "attention plan: expected {} block entries (one per model block), got {}", num_layers,
                  plan.blocks.size());
    for (size_t i = 0; i < plan.blocks.size(); ++i)
        validate_entry(plan.blocks[i], head_dim, grid, fmt::format("attention plan block {}", i));
}

}  // namespace surgeon
