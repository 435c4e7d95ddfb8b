// Bounded JSON parsing for every file Surgeon reads: a size cap and a nesting cap, checked while parsing, so a
// 100 MB file of nested arrays fails at once instead of building gigabytes of nodes first.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace surgeon {

constexpr int kMaxJsonDepth = 64;                    // Surgeon's own files nest at most 5 deep
constexpr uint64_t kMaxJsonFileBytes = 64ull << 20;  // plans, configs, tables, indexes, reports

// Parses `text` (from `source`, named in errors): one line "<source>: invalid JSON (...)" on a syntax error, a
// nesting deeper than kMaxJsonDepth or more than `max_bytes` of text.
nlohmann::json parse_json_bounded(const char* begin, const char* end, const std::string& source,
                                  uint64_t max_bytes = kMaxJsonFileBytes);
inline nlohmann::json parse_json_bounded(const std::string& text, const std::string& source,
                                         uint64_t max_bytes = kMaxJsonFileBytes) {
    return parse_json_bounded(text.data(), text.data() + text.size(), source, max_bytes);
}

}  // namespace surgeon
