// The block-error table: JSON reading (strict, one-line errors naming the field) and writing.
#include "surgery/block_errors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/fs.h"

namespace surgeon {
using json = nlohmann::json;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

// A [block][option] matrix of numbers; `allow_null` maps null to +infinity (errors: not a candidate).
std::vector<std::vector<double>> read_matrix(const json& j, const char* field, size_t num_options, bool allow_null,
                                             const std::string& source) {
    SURGEON_CHECK(j.is_array() && !j.empty(), "{}: '{}' must be a non-empty array of rows (one per block)", source,
                  field);
    std::vector<std::vector<double>> m;
    for (size_t b = 0; b < j.size(); ++b) {
        const auto& row = j[b];
        SURGEON_CHECK(row.is_array() && row.size() == num_options, "{}: {} of block {}: expected {} values (one per option), got {}",
                      source, field, b, num_options, row.is_array() ? std::to_string(row.size()) : row.dump());
        std::vector<double> r;
        for (size_t o = 0; o < row.size(); ++o) {
            if (row[o].is_null() && allow_null) {
                r.push_back(kInf);
                continue;
            }
            SURGEON_CHECK(row[o].is_number(), "{}: {} of block {} option {}: expected a number{}, got {}", source, field, b,
                          o, allow_null ? " or null" : "", row[o].dump());
            const double v = row[o].get<double>();
            SURGEON_CHECK(std::isfinite(v) && v >= 0, "{}: {} of block {} option {}: expected a finite value >= 0, got {}",
                          source, field, b, o, v);
            r.push_back(v);
        }
        m.push_back(std::move(r));
    }
    return m;
}
}  // namespace

json BlockErrorTable::to_json() const {
    json opts = json::array();
    for (size_t o = 0; o < options.size(); ++o) {
        AttentionPlan one;
        one.blocks = {options[o]};
        json e = one.to_json()["blocks"][0];
        e.erase("block");
        e["name"] = names[o];
        opts.push_back(e);
    }
    auto matrix = [](const std::vector<std::vector<double>>& m) {
        json rows = json::array();
        for (const auto& r : m) {
            json row = json::array();
            for (double v : r) row.push_back(std::isfinite(v) ? json(v) : json(nullptr));
            rows.push_back(row);
        }
        return rows;
    };
    json j = {{"format", "surgeon.block_errors"}, {"version", kVersion}, {"options", opts}, {"errors", matrix(errors)}};
    if (costs) j["costs"] = matrix(*costs);
    return j;
}

void parse_table_options(const json& options, const std::string& source, std::vector<std::string>& names,
                         std::vector<PlanEntry>& entries) {
    SURGEON_CHECK(options.is_array() && !options.empty(), "{}: 'options' must be a non-empty array", source);
    names.clear();
    entries.clear();
    for (size_t o = 0; o < options.size(); ++o) {
        json e = options[o];
        SURGEON_CHECK(e.is_object() && e.contains("name") && e["name"].is_string() && !e["name"].get<std::string>().empty(),
                      "{}: option {} needs a non-empty string 'name'", source, o);
        const std::string name = e["name"].get<std::string>();
        SURGEON_CHECK(std::find(names.begin(), names.end(), name) == names.end(), "{}: option name '{}' appears twice",
                      source, name);
        e.erase("name");
        e["block"] = 0;
        json one = {{"version", AttentionPlan::kVersion}, {"blocks", json::array({e})}};
        const std::string where = fmt::format("{}: option '{}'", source, name);
        const PlanEntry entry = AttentionPlan::from_json(one, where).blocks[0];
        validate_entry(entry, entry.feature_map.head_dim, nullptr, where);  // head dim and grid: at selection
        entries.push_back(entry);
        names.push_back(name);
    }
}

BlockErrorTable BlockErrorTable::from_json(const json& j, const std::string& source) {
    SURGEON_CHECK(j.is_object(), "{}: block-error table must be a JSON object", source);
    for (auto it = j.begin(); it != j.end(); ++it)
        SURGEON_CHECK(std::set<std::string>({"format", "version", "options", "errors", "costs"}).count(it.key()),
                      "{}: unknown key '{}'", source, it.key());
    SURGEON_CHECK(j.contains("format") && j["format"].is_string() && j["format"].get<std::string>() == "surgeon.block_errors",
                  "{}: field 'format': expected \"surgeon.block_errors\", got {}", source,
                  j.contains("format") ? j["format"].dump() : "nothing");
    SURGEON_CHECK(j.contains("version") && j["version"].is_number_integer() && j["version"].get<int>() == kVersion,
                  "{}: block-error table version: expected {}, got {}", source, kVersion,
                  j.contains("version") ? j["version"].dump() : "nothing");
    SURGEON_CHECK(j.contains("options"), "{}: missing field 'options'", source);
    BlockErrorTable t;
    parse_table_options(j["options"], source, t.names, t.options);
    SURGEON_CHECK(j.contains("errors"), "{}: missing field 'errors'", source);
    t.errors = read_matrix(j["errors"], "errors", t.options.size(), true, source);
    if (j.contains("costs")) {
        t.costs = read_matrix(j["costs"], "costs", t.options.size(), false, source);
        SURGEON_CHECK(t.costs->size() == t.errors.size(), "{}: 'costs' has {} rows but 'errors' has {}", source,
                      t.costs->size(), t.errors.size());
    }
    return t;
}

BlockErrorTable BlockErrorTable::load(const std::string& path) {
    json j;
    try {
        j = json::parse(read_text_file(path));
    } catch (const json::exception& e) {
        fail("{}: invalid JSON ({})", path, e.what());
    }
    return from_json(j, path);
}

void BlockErrorTable::save(const std::string& path) const {
    atomic_write(path, [&](std::ostream& o) { o << to_json().dump(1) << "\n"; });
}

}  // namespace surgeon
