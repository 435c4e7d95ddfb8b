// Progress line for long jobs: "label 12/100 [loss 0.123] 3.4 it/s ETA 0:25", redrawn on stderr.
#pragma once
#include <chrono>
#include <string>

namespace surgeon {

class Progress {
public:
    Progress(std::string label, int64_t total, bool enabled = true);
    // Marks `done` items finished; `extra` is printed after the counter (e.g. "loss 0.123").
    void update(int64_t done, const std::string& extra = "");
    void finish(const std::string& extra = "");
    double elapsed_s() const;

private:
    std::string label_;
    int64_t total_, start_done_ = -1;
    bool enabled_;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace surgeon
