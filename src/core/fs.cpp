// Atomic file writing and small file helpers.
#include "core/fs.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace surgeon {
namespace fs = std::filesystem;

void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write) {
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    SURGEON_CHECK(fs::is_directory(dir), "{}: output folder does not exist", path);
    const std::string tmp = path + fmt::format(".tmp.{}", ::getpid());
    try {
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            SURGEON_CHECK(out.good(), "{}: cannot write temporary file", tmp);
            write(out);
            out.flush();
            SURGEON_CHECK(out.good(), "{}: write failed (disk full?)", tmp);
        }
        int fd = ::open(tmp.c_str(), O_RDONLY);
        if (fd >= 0) {
            ::fsync(fd);
            ::close(fd);
        }
        rename_path(tmp, path);
    } catch (...) {
        std::error_code ec;
        ::remove(tmp.c_str());
        throw;
    }
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    SURGEON_CHECK(in.good(), "{}: cannot open file", path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
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
    rename_path(tmp, dir);
    remove_tree(old);
}

bool file_exists(const std::string& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec);
}

}  // namespace surgeon
