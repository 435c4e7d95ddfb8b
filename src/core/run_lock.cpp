#include "core/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"

namespace surgeon {

namespace {
std::string read_holder(int fd) {
    char buf[64] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    std::string s = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.empty() ? std::string("unknown") : s;
}
}  // namespace

RunLock::RunLock(const std::string& dir, const std::string& command) : path_(dir + "/" + kFileName) {
    // Retried when the file was replaced between open and flock (a holder removing it as it exits).
    for (int attempt = 0; attempt < 8; ++attempt) {
        const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        SURGEON_CHECK(fd >= 0, "{}: cannot create the run lock of {} ({})", path_, command, std::strerror(errno));
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            const std::string holder = read_holder(fd);
            ::close(fd);
            SURGEON_CHECK(err != EWOULDBLOCK,
                          "{}: another surgeon run (pid {}) is writing this folder; wait for it to finish or choose "
                          "another output folder (lock {})",
                          dir, holder, path_);
            fail("{}: cannot lock {} ({})", dir, path_, std::strerror(err));
        }
        struct stat a {}, b {};
        if (::fstat(fd, &a) == 0 && ::stat(path_.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            const std::string pid = std::to_string(::getpid()) + "\n";
            if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
                // The pid is for messages only; the lock itself is the flock.
            }
            fd_ = fd;
            return;
        }
        ::close(fd);
    }
    fail("{}: cannot take the run lock {} (the file keeps changing)", dir, path_);
}

void RunLock::release() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());  // while still holding it: a waiter that opened the old file retries on the new one
    ::close(fd_);
    fd_ = -1;
}

RunLock::~RunLock() { release(); }

RunLock::RunLock(RunLock&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_) { o.fd_ = -1; }

RunLock& RunLock::operator=(RunLock&& o) noexcept {
    if (this != &o) {
        release();
        path_ = std::move(o.path_);
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

}  // namespace surgeon
