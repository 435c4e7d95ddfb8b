// Error classes of Surgeon. User/input errors throw surgeon::Error with one clear line that names
// the thing, the expected and the actual value; the CLI prints it and exits non-zero.
// Internal bugs use SURGEON_ASSERT (also throws, but says "internal error").
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <stdexcept>
#include <string>

namespace surgeon {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace surgeon

#define SURGEON_CHECK(cond, ...)                 \
    do {                                         \
        if (!(cond)) ::surgeon::fail(__VA_ARGS__); \
    } while (0)

#define SURGEON_ASSERT(cond)                                                                     \
    do {                                                                                         \
        if (!(cond))                                                                             \
            throw ::surgeon::Error(fmt::format("internal error: {} failed at {}:{}", #cond,      \
                                               __FILE__, __LINE__));                             \
    } while (0)
