// The attention plan (method.md §5.4): per block {kind, rate, chunk, overlap, causal, feature map + sizes,
// stabiliser}. A versioned JSON artifact saved with every student checkpoint (metadata "surgeon.plan" and
// plan.json beside it). Validation gives one-line errors naming the block, the field, expected and actual.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "attention/feature_maps.h"
#include "core/types.h"

namespace surgeon {

enum class AttentionKind { Softmax, Hybrid, Linear, Chunked };
inline constexpr EnumName<AttentionKind> kAttentionKindNames[] = {{AttentionKind::Softmax, "softmax"},
                                                                 {AttentionKind::Hybrid, "hybrid"},
                                                                 {AttentionKind::Linear, "linear"},
                                                                 {AttentionKind::Chunked, "chunked"}};
AttentionKind parse_attention_kind(const std::string& s);
std::string to_string(AttentionKind k);

// c_i of method.md §2: Max = row max over the softmax keys (the paper's), Lse = their log-sum-exp.
enum class Stabilizer { Max, Lse };
inline constexpr EnumName<Stabilizer> kStabilizerNames[] = {{Stabilizer::Max, "max"}, {Stabilizer::Lse, "lse"}};
Stabilizer parse_stabilizer(const std::string& s);
std::string to_string(Stabilizer s);

struct PlanEntry {
    AttentionKind kind = AttentionKind::Softmax;
    int64_t rate = 1;      // hybrid: softmax keys are j mod rate == 0
    int64_t chunk = 1;     // chunked: T_c latent frames per chunk
    int64_t overlap = 0;   // chunked: T_o frames of softmax overlap before the chunk
    bool causal = false;   // chunked: linear keys only from earlier frames
    FeatureMapSpec feature_map;  // hybrid, linear, chunked
    Stabilizer stabilizer = Stabilizer::Lse;  // hybrid, chunked

    bool has_linear_branch() const { return kind != AttentionKind::Softmax; }
    bool has_softmax_branch() const { return kind != AttentionKind::Linear; }
    // Fields irrelevant to the kind reset to defaults; feature map sized for head dim D (0: leave unsized).
    PlanEntry normalized(int64_t D = 0) const;
    std::string describe() const;  // e.g. "hybrid R=4 poly(h=32,P=2) lse"
    bool operator==(const PlanEntry& o) const;
    bool operator!=(const PlanEntry& o) const { return !(*this == o); }
};

struct AttentionPlan {
    static constexpr int kVersion = 1;
    std::vector<PlanEntry> blocks;  // one entry per DiT block

    int64_t num_converted() const;
    bool operator==(const AttentionPlan& o) const { return blocks == o.blocks; }

    nlohmann::json to_json() const;
    // Errors name `source` (a file name or "plan") and the offending field.
    static AttentionPlan from_json(const nlohmann::json& j, const std::string& source = "plan");
    std::string dump() const;  // pretty JSON text
    static AttentionPlan parse(const std::string& text, const std::string& source = "plan");
    void save(const std::string& path) const;  // atomic
    static AttentionPlan load(const std::string& path);
};

// Every block softmax except `blocks` (empty = all blocks), which get `entry` (normalised for head dim D).
AttentionPlan uniform_plan(int64_t num_layers, int64_t head_dim, const PlanEntry& entry,
                           const std::vector<int64_t>& blocks = {});
// "all" -> {} ; "0,3,5" -> {0,3,5} (range-checked against num_layers, duplicates rejected).
std::vector<int64_t> parse_block_list(const std::string& s, int64_t num_layers);

// Checks the plan against a model (num_layers blocks, head dim D) and, if given, a token grid. Throws one line:
// unknown values, rate <= 0, chunk <= 0 or longer than the video, overlap < 0, wrong block count,
// a feature map sized for another head dim, poly parts/hidden <= 0.
void validate_plan(const AttentionPlan& plan, int64_t num_layers, int64_t head_dim, const TokenGrid* grid = nullptr);
// One entry alone (used by the cores at forward time with the actual grid).
void validate_entry(const PlanEntry& e, int64_t head_dim, const TokenGrid* grid, const std::string& where);

}  // namespace surgeon
