// Shared by the harnesses: every parser must either succeed or throw surgeon::Error (a message). Any other
// exception (a raw library error escaping the checks), a crash or a sanitizer report is a finding.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "core/error.h"

namespace surgeon::fuzz {

template <typename F>
void expect_clean(F&& f) {
    try {
        f();
    } catch (const surgeon::Error& e) {
        // Messages may quote the input (and so its newlines): main's handler prints them on one line.
        if (std::string(e.what()).empty()) {
            std::fprintf(stderr, "empty error message\n");
            std::abort();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "raw exception escaped: %s\n", e.what());
        std::abort();
    }
}

inline std::string as_string(const uint8_t* data, size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace surgeon::fuzz
