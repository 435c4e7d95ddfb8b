// Stage 2: the block-error table, option pricing, knapsack selection into an attention plan, and its report.
#include "surgery/rate_selection.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "attention/cost_model.h"
#include "core/error.h"
#include "core/fs.h"
#include "surgery/attention_swap.h"
#include "surgery/plan_report.h"

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

KnapsackSolver parse_knapsack_solver(const std::string& s) {
    if (s == "dp") return KnapsackSolver::Dp;
    if (s == "brute") return KnapsackSolver::Brute;
    fail("unknown knapsack solver '{}' (expected dp|brute)", s);
}

namespace {
// Best uniform plan: option o on the k blocks whose error rises least over softmax, the rest softmax.
void best_uniform(RateSelection& s, const BlockErrorTable& t, int64_t softmax_option) {
    const size_t B = t.errors.size(), O = t.options.size();
    for (size_t o = 0; o < O; ++o) {
        if (static_cast<int64_t>(o) == softmax_option) continue;
        std::vector<size_t> order;
        for (size_t b = 0; b < B; ++b)
            if (std::isfinite(t.errors[b][o])) order.push_back(b);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return t.errors[a][o] - t.errors[a][softmax_option] < t.errors[b][o] - t.errors[b][softmax_option];
        });
        std::vector<int> choice(B, static_cast<int>(softmax_option));
        for (size_t k = 0; k <= order.size(); ++k) {  // k blocks converted, the cheapest error rises first
            if (k > 0) choice[order[k - 1]] = static_cast<int>(o);
            KnapsackSolution u;
            u.choice = choice;
            for (size_t b = 0; b < B; ++b) {
                u.cost += s.costs[b][choice[b]];
                u.error += t.errors[b][choice[b]];
            }
            if (k == 0 || !std::isfinite(u.error) || u.cost > s.budget * (1 + 1e-12)) continue;
            if (!s.uniform || u.error < s.uniform->error) {
                s.uniform = u;
                s.uniform_option = t.names[o];
            }
        }
    }
}
}  // namespace

RateSelection select_rates(const BlockErrorTable& table, const WanConfig& cfg, const TokenGrid& grid,
                           double budget_fraction, KnapsackSolver solver, int64_t units) {
    SURGEON_CHECK(std::isfinite(budget_fraction) && budget_fraction > 0,
                  "budget must be a positive fraction of the teacher's attention cost, got {}", budget_fraction);
    SURGEON_CHECK(table.num_blocks() == cfg.num_layers, "block-error table has {} blocks but the model has {}",
                  table.num_blocks(), cfg.num_layers);
    const int64_t D = cfg.head_dim();
    std::vector<PlanEntry> entries;
    int64_t softmax_option = -1;
    for (size_t o = 0; o < table.options.size(); ++o) {
        entries.push_back(table.options[o].normalized(D));
        validate_entry(entries.back(), D, &grid, fmt::format("option '{}'", table.names[o]));
        if (entries.back().kind == AttentionKind::Softmax && softmax_option < 0) softmax_option = static_cast<int64_t>(o);
    }
    RateSelection s;
    s.flops = !table.costs.has_value();
    if (s.flops) {
        std::vector<double> per_option;
        for (const auto& e : entries) per_option.push_back(block_attention_flops(e, cfg.num_heads, D, grid).total());
        s.costs.assign(table.errors.size(), per_option);
        s.teacher_cost = teacher_attention_flops(cfg.num_heads, D, grid) * static_cast<double>(cfg.num_layers);
    } else {
        SURGEON_CHECK(softmax_option >= 0,
                      "block-error table gives its own costs but no softmax option: the budget is a fraction of the "
                      "teacher's cost, which is then the softmax option's");
        s.costs = *table.costs;
        for (const auto& row : s.costs) s.teacher_cost += row[softmax_option];
        SURGEON_CHECK(s.teacher_cost > 0, "block-error table: the softmax option costs 0 in every block");
    }
    s.budget = budget_fraction * s.teacher_cost;
    std::vector<std::vector<KnapsackOption>> problem(table.errors.size());
    for (size_t b = 0; b < problem.size(); ++b)
        for (size_t o = 0; o < entries.size(); ++o) problem[b].push_back({s.costs[b][o], table.errors[b][o]});
    s.solution = solver == KnapsackSolver::Dp ? solve_knapsack_dp(problem, s.budget, units)
                                              : solve_knapsack_brute(problem, s.budget);
    for (size_t b = 0; b < problem.size(); ++b) s.plan.blocks.push_back(entries[s.solution.choice[b]]);
    validate_plan(s.plan, cfg, &grid);
    if (softmax_option >= 0) best_uniform(s, table, softmax_option);
    return s;
}

std::string describe_selection(const RateSelection& s, const BlockErrorTable& table) {
    auto cost_str = [&](double c) { return s.flops ? format_flops(c) : fmt::format("{:.4g}", c); };
    const double teacher_block = s.teacher_cost / std::max<size_t>(1, s.plan.blocks.size());
    std::string out = fmt::format("{:>5}  {:<12} {:<36} {:>12} {:>12} {:>9}\n", "block", "option", "attention", "error",
                                  s.flops ? "FLOPs" : "cost", "% teacher");
    for (size_t b = 0; b < s.plan.blocks.size(); ++b) {
        const int o = s.solution.choice[b];
        out += fmt::format("{:>5}  {:<12} {:<36} {:>12.6g} {:>12} {:>8.1f}%\n", b, table.names[o],
                           s.plan.blocks[b].describe(), table.errors[b][o], cost_str(s.costs[b][o]),
                           100.0 * s.costs[b][o] / teacher_block);
    }
    out += fmt::format("total: error {:.6g}, cost {} = {:.2f}% of the teacher's {} (budget {:.2f}%)\n", s.solution.error,
                       cost_str(s.solution.cost), 100.0 * s.solution.cost / s.teacher_cost, cost_str(s.teacher_cost),
                       100.0 * s.budget / s.teacher_cost);
    out += s.solution.optimal
               ? std::string("the least summed error of any choice within the budget (proven)\n")
               : fmt::format("not proven optimal: no choice within the budget has an error below {:.6g} (raise --units)\n",
                             s.solution.lower_bound);
    if (s.uniform) {
        int64_t k = 0;
        for (size_t b = 0; b < s.uniform->choice.size(); ++b) k += table.names[s.uniform->choice[b]] == s.uniform_option;
        out += fmt::format("best uniform plan in the same budget: {} x {}, error {:.6g}, cost {:.2f}% (knapsack: {:+.6g})\n",
                           k, s.uniform_option, s.uniform->error, 100.0 * s.uniform->cost / s.teacher_cost,
                           s.solution.error - s.uniform->error);
    } else {
        out += "best uniform plan in the same budget: none (no softmax option, or no uniform plan fits)\n";
    }
    return out;
}

}  // namespace surgeon
