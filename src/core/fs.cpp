// Atomic file writing and small file helpers.
#include "core/fs.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_limits.h"

namespace surgeon {
namespace fs = std::filesystem;

namespace {
// Kill -9 campaign hook (scripts/kill_campaign.sh, tests/cli/test_kill_campaign.cpp): SURGEON_KILL_AT=write:N
// SIGKILLs the process inside its N-th atomic_write, after the temporary file is written and before the rename;
// swap:N inside its N-th atomic_write_dir, between moving the old folder away and moving the new one in. Unset:
// nothing happens.
void maybe_kill_at(const char* point) {
    static const char* spec = std::getenv("SURGEON_KILL_AT");
    if (!spec) return;
    static int counts[2] = {0, 0};
    const bool is_write = std::strcmp(point, "write") == 0;
    const size_t len = std::strlen(point);
    if (std::strncmp(spec, point, len) != 0 || spec[len] != ':') return;
    if (++counts[is_write ? 0 : 1] == std::atoi(spec + len + 1)) ::kill(::getpid(), SIGKILL);
}
// Removes `<path>.tmp.<pid>` files that a killed writer left beside `path` (the pid no longer runs).
void remove_stale_temporaries(const fs::path& target) {
    const std::string prefix = target.filename().string() + ".tmp.";
    std::error_code ec;
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string pid = name.substr(prefix.size());
        if (pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
        if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) ::remove(it->path().c_str());
    }
}
}  // namespace

void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write) {
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    SURGEON_CHECK(fs::is_directory(dir), "{}: output folder does not exist", path);
    const std::string tmp = path + fmt::format(".tmp.{}", ::getpid());
    try {
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            SURGEON_CHECK(out.good(), "{}: cannot write temporary file ({})", tmp, std::strerror(errno));
            errno = 0;
            write(out);
            out.flush();
            // Disk full (ENOSPC), a file size limit (EFBIG) or an I/O error: the target keeps its old content.
            SURGEON_CHECK(out.good(), "{}: write failed ({}); the file was left as it was", path,
                          errno ? std::strerror(errno) : "disk full?");
            out.close();
            SURGEON_CHECK(!out.fail(), "{}: write failed on close ({}); the file was left as it was", path,
                          std::strerror(errno));
        }
        maybe_kill_at("write");
        int fd = ::open(tmp.c_str(), O_RDONLY);
        SURGEON_CHECK(fd >= 0, "{}: cannot reopen temporary file ({})", tmp, std::strerror(errno));
        const int rc = ::fsync(fd);
        const int err = errno;
        ::close(fd);
        SURGEON_CHECK(rc == 0, "{}: write failed on fsync ({}); the file was left as it was", path, std::strerror(err));
        rename_path(tmp, path);
        remove_stale_temporaries(target);
    } catch (...) {
        std::error_code ec;
        ::remove(tmp.c_str());
        throw;
    }
}

std::string read_text_file(const std::string& path) {
    check_input_file(path, "file");
    std::ifstream in(path, std::ios::binary);
    SURGEON_CHECK(in.good(), "{}: cannot open file", path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

nlohmann::json read_json_file(const std::string& path) {
    return parse_json_bounded(read_text_file(path), path);
}

void remove_failed_run_outputs(const std::string& dir, bool created, const std::vector<std::string>& created_files) {
    std::error_code ec;
    const fs::path d(dir);
    if (fs::exists(d / "checkpoint", ec) || fs::exists(d / "checkpoint.old", ec)) return;
    try {
        if (created) {
            remove_tree(dir);
            return;
        }
        for (const auto& f : created_files) ::remove((d / f).c_str());
    } catch (const Error&) {  // cleaning up must not hide the original error
    }
}

void remove_tree(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;
    auto cb = [](const char* p, const struct stat*, int, struct FTW*) -> int { return ::remove(p); };
    SURGEON_CHECK(::nftw(path.c_str(), cb, 16, FTW_DEPTH | FTW_PHYS) == 0, "{}: cannot remove ({})", path,
                  std::strerror(errno));
}

void rename_path(const std::string& from, const std::string& to) {
    SURGEON_CHECK(::rename(from.c_str(), to.c_str()) == 0, "cannot rename {} to {} ({})", from, to, std::strerror(errno));
}

void atomic_write_dir(const std::string& dir, const std::function<void(const std::string& tmp_dir)>& write) {
    const std::string tmp = dir + ".tmp", old = dir + ".old";
    remove_tree(tmp);
    fs::create_directories(tmp);
    try {
        write(tmp);
    } catch (...) {
        remove_tree(tmp);
        throw;
    }
    remove_tree(old);
    if (fs::exists(dir)) rename_path(dir, old);
    maybe_kill_at("swap");
    rename_path(tmp, dir);
    remove_tree(old);
}

namespace {

const char* file_type_name(mode_t m) {
    if (S_ISDIR(m)) return "folder";
    if (S_ISFIFO(m)) return "FIFO";
    if (S_ISCHR(m)) return "character device";
    if (S_ISBLK(m)) return "block device";
    if (S_ISSOCK(m)) return "socket";
    if (S_ISREG(m)) return "regular file";
    return "special file";
}

// The absolute path with every symlink of its existing prefix resolved (lexically normal afterwards).
fs::path resolved(const std::string& p) {
    std::error_code ec;
    auto r = fs::weakly_canonical(fs::absolute(p), ec);
    return ec ? fs::absolute(p).lexically_normal() : r;
}

// Whether `inner` is `outer` or lies below it (both resolved).
bool is_within(const fs::path& inner, const fs::path& outer) {
    auto i = inner.begin(), o = outer.begin();
    for (; o != outer.end(); ++o, ++i) {
        if (o->empty() && std::next(o) == outer.end()) break;  // trailing separator
        if (i == inner.end() || *i != *o) return false;
    }
    return true;
}

bool same_inode(const struct stat& a, const std::string& b) {
    struct stat sb {};
    return ::stat(b.c_str(), &sb) == 0 && a.st_dev == sb.st_dev && a.st_ino == sb.st_ino;
}

// Whether a regular file under `dir` (at most 4 levels, 100k entries) is the file `st` (a hard link into a model).
bool inode_in_tree(const struct stat& st, const fs::path& dir) {
    std::error_code ec;
    int64_t seen = 0;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end && seen < 100000; it.increment(ec), ++seen) {
        if (it.depth() > 4) it.disable_recursion_pending();
        struct stat s {};
        if (::lstat(it->path().c_str(), &s) == 0 && S_ISREG(s.st_mode) && s.st_dev == st.st_dev && s.st_ino == st.st_ino)
            return true;
    }
    return false;
}

void check_output_parent(const std::string& out, const fs::path& target, OutputKind kind, const std::string& flag) {
    fs::path parent = target.parent_path();
    if (kind == OutputKind::Folder) {  // created with its parents: the nearest existing ancestor decides
        std::error_code ec;
        while (!parent.empty() && !fs::exists(parent, ec) && parent != parent.parent_path()) parent = parent.parent_path();
    }
    struct stat ps {};
    SURGEON_CHECK(::stat(parent.c_str(), &ps) == 0, "{} '{}': output folder does not exist ('{}')", flag, out, parent.string());
    SURGEON_CHECK(S_ISDIR(ps.st_mode), "{} '{}': '{}' is a {}, not a folder", flag, out, parent.string(),
                  file_type_name(ps.st_mode));
    SURGEON_CHECK(::access(parent.c_str(), W_OK | X_OK) == 0, "{} '{}': the folder '{}' is not writable", flag, out,
                  parent.string());
}

}  // namespace

void check_input_file(const std::string& path, const std::string& what) {
    SURGEON_CHECK(!path.empty(), "{}: empty file name", what);
    struct stat st {};
    SURGEON_CHECK(::stat(path.c_str(), &st) == 0, "{} '{}' does not exist", what, path);
    SURGEON_CHECK(S_ISREG(st.st_mode), "{} '{}' is a {}, not a regular file", what, path, file_type_name(st.st_mode));
}

void check_output_path(const std::string& out, const std::vector<std::string>& inputs,
                       const std::vector<std::string>& model_dirs, OutputKind kind, const std::string& flag) {
    SURGEON_CHECK(!out.empty(), "{}: empty path", flag);
    const fs::path target = resolved(out);
    struct stat st {};
    const bool exists = ::stat(out.c_str(), &st) == 0;
    if (exists && kind == OutputKind::File)
        SURGEON_CHECK(S_ISREG(st.st_mode), "{} '{}' exists and is a {}, not a regular file (refusing to replace it)", flag,
                      out, file_type_name(st.st_mode));
    if (exists && kind == OutputKind::Folder)
        SURGEON_CHECK(S_ISDIR(st.st_mode), "{} '{}' exists and is a {}, not a folder", flag, out, file_type_name(st.st_mode));
    for (const auto& in : inputs) {
        if (in.empty()) continue;
        const fs::path src = resolved(in);
        const bool same = target == src || (exists && same_inode(st, in));
        SURGEON_CHECK(!same, "{} '{}' is the input file '{}' (refusing to overwrite an input)", flag, out, in);
        if (kind == OutputKind::Folder)
            SURGEON_CHECK(!is_within(src, target), "{} '{}' contains the input file '{}' (refusing to overwrite an input)",
                          flag, out, in);
    }
    for (const auto& m : model_dirs) {
        if (m.empty()) continue;
        const fs::path dir = resolved(m);
        SURGEON_CHECK(!is_within(target, dir), "{} '{}' lies inside the model folder '{}' the command reads", flag, out, m);
        if (kind == OutputKind::Folder)
            SURGEON_CHECK(!is_within(dir, target), "{} '{}' contains the model folder '{}' the command reads", flag, out, m);
        struct stat ms {};
        if (exists && kind == OutputKind::File && ::stat(m.c_str(), &ms) == 0 && S_ISDIR(ms.st_mode))
            SURGEON_CHECK(!inode_in_tree(st, dir), "{} '{}' is a hard link to a file of the model folder '{}'", flag, out, m);
    }
    check_output_parent(out, target, kind, flag);
}

bool file_exists(const std::string& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec);
}

}  // namespace surgeon
