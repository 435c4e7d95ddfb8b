// One writer per output folder: a run that fills a folder (train, distill, finetune, surgery) holds
// `<folder>/surgeon.lock` (flock, exclusive, non-blocking) while it runs. A second run on the same folder fails at
// once with one line naming the holder's pid. The kernel drops the lock when the holder exits or is killed, so a
// lock file left by a crash is stale and simply taken over; a normal exit (or an exception) removes the file.
#pragma once
#include <string>

namespace surgeon {

class RunLock {
public:
    RunLock() = default;
    // Takes the lock of `dir` (which must exist) for `command` (named in messages) or throws one line.
    RunLock(const std::string& dir, const std::string& command);
    ~RunLock();
    RunLock(RunLock&& o) noexcept;
    RunLock& operator=(RunLock&& o) noexcept;
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;

    bool held() const { return fd_ >= 0; }
    const std::string& path() const { return path_; }
    void release();  // removes the lock file and drops the lock (also done by the destructor)

    static constexpr const char* kFileName = "surgeon.lock";

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace surgeon
