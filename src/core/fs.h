// File helpers: atomic writes (temp file in the same folder + rename) and small readers.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace surgeon {

// What an output path names: one file (written atomically beside itself) or a folder the command fills.
enum class OutputKind { File, Folder };
// The one output-path guard of every command, called before any work. Refuses `out` when it
//  * is the same file as one of `inputs` (same path after canonicalisation, or the same st_dev + st_ino:
//    symlinks and hard links), or, for a folder output, contains one of them;
//  * lies inside (or, for a folder output, equals or contains) one of `model_dirs`, or is a hard link to a file
//    in one of them;
//  * exists but is not a regular file (File: device node, FIFO, socket, folder) or not a folder (Folder);
//  * has a parent folder that does not exist, is not a folder or is not writable (Folder: the nearest existing
//    ancestor, since folder outputs are created with their parents).
// `flag` names the option in the message (e.g. "--out"). Empty `out` is refused; empty inputs are skipped.
void check_output_path(const std::string& out, const std::vector<std::string>& inputs = {},
                       const std::vector<std::string>& model_dirs = {}, OutputKind kind = OutputKind::File,
                       const std::string& flag = "--out");
// An input file: exists and is a regular file, checked with stat() before anything opens it (so a FIFO or a
// device node never blocks or streams forever). `what` names it in the message (e.g. "--inputs").
void check_input_file(const std::string& path, const std::string& what = "input");

// Calls `write` on a temporary file beside `path`, flushes, fsyncs and renames it over `path`.
// On any exception the temporary file is removed and `path` is left untouched.
void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write);
std::string read_text_file(const std::string& path);
// A JSON file; a syntax error is one line naming the file ("<path>: invalid JSON (...)").
nlohmann::json read_json_file(const std::string& path);
// Cleans up after a failed run that wrote into `dir`: removes `dir` when `created` (it did not exist before the
// run) and it holds no checkpoint yet, else the files of `created_files` (paths inside `dir` that did not exist
// before). A folder with a checkpoint/ or checkpoint.old/ is kept as it is: the last checkpoint is usable.
void remove_failed_run_outputs(const std::string& dir, bool created, const std::vector<std::string>& created_files);
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
