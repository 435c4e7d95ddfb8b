// Progress line for long jobs: "label 12/100 [loss 0.123] 3.4 it/s ETA 0:25", redrawn on stderr.
#pragma once
#include <chrono>
#include <string>

namespace surgeon {

class Progress {
public:
    // already_done: items finished before this run (a resumed job); the rate counts this run's items only.
    Progress(std::string label, int64_t total, bool enabled = true, int64_t already_done = 0);
    // Marks `done` items finished; `extra` is printed after the counter (e.g. "loss 0.123").
    void update(int64_t done, const std::string& extra = "");
    void finish(const std::string& extra = "");
    double elapsed_s() const;
    // The progress line for `done` items after `elapsed` seconds (what update draws; rate below 0.1 it/s is
    // shown as seconds per item).
    std::string line(int64_t done, double elapsed, const std::string& extra = "") const;

private:
    std::string label_;
    int64_t total_, already_done_;
    bool enabled_;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace surgeon
