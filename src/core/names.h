// One table of names per enum: parse, to_string and the CLI's allowed values (CLI::IsMember(names_of(table)))
// all read it, so adding a value to an option is one edit. A table lists every value once, in the order the
// help and the error messages show them.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "core/error.h"

namespace surgeon {

template <typename E>
struct EnumName {
    E value;
    const char* name;
};

// The names in table order.
template <typename E, size_t N>
std::vector<std::string> names_of(const EnumName<E> (&table)[N]) {
    std::vector<std::string> out;
    for (const auto& e : table) out.emplace_back(e.name);
    return out;
}

// "a|b|c" (or with another separator).
template <typename E, size_t N>
std::string joined_names(const EnumName<E> (&table)[N], const char* sep = "|") {
    std::string out;
    for (size_t i = 0; i < N; ++i) out += (i ? sep : "") + std::string(table[i].name);
    return out;
}

// The value named `s`; otherwise one line: "unknown <what> '<s>' (expected a|b|c)".
template <typename E, size_t N>
E parse_name(const EnumName<E> (&table)[N], const std::string& s, const char* what) {
    for (const auto& e : table)
        if (s == e.name) return e.value;
    fail("unknown {} '{}' (expected {})", what, s, joined_names(table));
}

template <typename E, size_t N>
std::string name_of(const EnumName<E> (&table)[N], E v) {
    for (const auto& e : table)
        if (e.value == v) return e.name;
    return "?";
}

}  // namespace surgeon
