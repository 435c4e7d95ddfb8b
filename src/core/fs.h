// File helpers: atomic writes (temp file in the same folder + rename) and small readers.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace surgeon {

// Calls `write` on a temporary file beside `path`, flushes, fsyncs and renames it over `path`.
// On any exception the temporary file is removed and `path` is left untouched.
void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write);
std::string read_text_file(const std::string& path);
bool file_exists(const std::string& path);
// Deletes a file or a folder tree (no error if absent). POSIX nftw: std::filesystem::remove_all on a non-empty
// folder crashed inside libtorch processes on the GPU machine (symbol interposition).
void remove_tree(const std::string& path);
// POSIX rename (also for folders); throws with the OS error on failure.
void rename_path(const std::string& from, const std::string& to);
// Writes a whole folder atomically: `write` fills `<dir>.tmp` (created empty), which then replaces `dir` by
// renames (`dir` -> `<dir>.old`, tmp -> `dir`, old deleted). A kill at any point leaves `dir` or `<dir>.old`
// complete; on an exception from `write` the temporary folder is removed and `dir` is untouched.
void atomic_write_dir(const std::string& dir, const std::function<void(const std::string& tmp_dir)>& write);

}  // namespace surgeon
