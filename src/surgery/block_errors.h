// The block-error table: what stage 1 measures and stage 2 selects with (method.md §5.1-5.2), one held-out error
// e[block][option] per candidate, with the plan entry each option stands for.
//
// Format ("surgeon.block_errors", version 1):
//   {"format": "surgeon.block_errors", "version": 1,
//    "options": [{"name": "softmax", "kind": "softmax"},
//                {"name": "R4", "kind": "hybrid", "rate": 4, "feature_map": {"kind": "poly"}}, ...],
//    "errors": [[0.0, 0.021, ...], ...],   // one row per block, one column per option; null = not a candidate
//    "costs": [[...], ...]}                 // optional, same shape; default: attention FLOPs on the token grid
// Option objects take the keys of an attention plan entry (attention/attention_plan.h) plus "name".
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "attention/attention_plan.h"

namespace surgeon {

struct BlockErrorTable {
    static constexpr int kVersion = 1;
    std::vector<std::string> names;           // one per option, unique
    std::vector<PlanEntry> options;           // the plan entry each option stands for
    std::vector<std::vector<double>> errors;  // [block][option]; +infinity = not a candidate
    std::optional<std::vector<std::vector<double>>> costs;  // [block][option]

    int64_t num_blocks() const { return static_cast<int64_t>(errors.size()); }
    nlohmann::json to_json() const;
    // Errors are one line naming `source` and the field (block and option where it applies).
    static BlockErrorTable from_json(const nlohmann::json& j, const std::string& source = "table");
    static BlockErrorTable load(const std::string& path);
    void save(const std::string& path) const;  // atomic
};

// The "options" array of a table (also the options file of `surgeon distill`): names and plan entries, each
// entry checked on its own (head dim and grid are checked at selection); errors name `source` and the option.
void parse_table_options(const nlohmann::json& options, const std::string& source, std::vector<std::string>& names,
                         std::vector<PlanEntry>& entries);

}  // namespace surgeon
