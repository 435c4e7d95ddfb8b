// The one place that turns an exception escaping a command into a single `error:` line and an exit status
// (main.cpp's handler; header-only so tests can throw into it without the program).
#pragma once
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <filesystem>
#include <new>
#include <string>

#include "core/error.h"

namespace surgeon::cli {

struct ErrorReport {
    std::string line;  // without "error: " and without a newline
    int exit_code = 1;
};

inline std::string one_line(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

// "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of ... (long advice)" -> the
// first two sentences, then what to change.
inline std::string out_of_memory_line(const std::string& what) {
    std::string head = one_line(what);
    size_t cut = head.find(". ");
    if (cut != std::string::npos) cut = head.find(". ", cut + 2);
    if (cut != std::string::npos) head = head.substr(0, cut + 1);
    return "out of GPU memory: " + head +
           " Lower --batch, the frames or the resolution, or use a GPU with more memory (nothing was written after "
           "the last checkpoint; --resume continues from it)";
}

// Called inside a catch block with std::current_exception().
inline ErrorReport report_exception(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const CLI::ParseError& x) {
        return {one_line(x.what()) + " (see --help)", 2};
    } catch (const surgeon::Error& x) {
        return {one_line(x.what()), 1};
    } catch (const c10::OutOfMemoryError& x) {  // before c10::Error, which it derives from
        return {out_of_memory_line(x.what_without_backtrace()), 1};
    } catch (const c10::Error& x) {
        return {one_line(x.what_without_backtrace()), 1};
    } catch (const std::filesystem::filesystem_error& x) {  // "filesystem error: ..." -> the paths and the OS reason
        const std::string paths = x.path1().string() + (x.path2().empty() ? "" : " -> " + x.path2().string());
        return {one_line(paths + ": " + x.code().message()), 1};
    } catch (const std::bad_alloc&) {
        return {"out of memory (host): lower --batch, the frames or the resolution", 1};
    } catch (const std::exception& x) {
        return {one_line(x.what()), 1};
    } catch (...) {
        return {"unknown internal error", 1};
    }
}

}  // namespace surgeon::cli
