// Atomic file writing and small file helpers.
#include "core/fs.h"

#include <fcntl.h>
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
        fs::rename(tmp, target);
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
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

bool file_exists(const std::string& path) {
    std::error_code ec;
    return fs::is_regular_file(path, ec);
}

}  // namespace surgeon
