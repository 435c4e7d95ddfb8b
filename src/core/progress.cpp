// Progress reporting with rate and ETA.
#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace surgeon {

Progress::Progress(std::string label, int64_t total, bool enabled, int64_t already_done)
    : label_(std::move(label)),
      total_(total),
      already_done_(already_done),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

static std::string hms(double s) {
    if (!(s >= 0) || s > 1e7) return "?";
    int64_t t = static_cast<int64_t>(s + 0.5);
    return t >= 3600 ? fmt::format("{}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60)
                     : fmt::format("{}:{:02d}", t / 60, t % 60);
}

std::string Progress::line(int64_t done, double elapsed, const std::string& extra) const {
    const double rate = elapsed > 0 ? (done - already_done_) / elapsed : 0.0;
    const double eta = rate > 0 ? (total_ - done) / rate : -1;
    const std::string r = rate >= 0.1 || rate <= 0 ? fmt::format("{:.2f} it/s", rate) : fmt::format("{:.1f} s/it", 1.0 / rate);
    return fmt::format("{} {}/{}{}{} {} ETA {}", label_, done, total_, extra.empty() ? "" : " ", extra, r, hms(eta));
}

void Progress::update(int64_t done, const std::string& extra) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    const bool last = done >= total_;
    if (!last && std::chrono::duration<double>(now - last_draw_).count() < 0.5) return;
    last_draw_ = now;
    const bool tty = isatty(fileno(stderr));
    std::fprintf(stderr, tty ? "\r%s\033[K" : "%s\n", line(done, elapsed_s(), extra).c_str());
    if (last && tty) std::fprintf(stderr, "\n");
    std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
    if (!enabled_) return;
    std::fprintf(stderr, "%s done in %s%s%s\n", label_.c_str(), hms(elapsed_s()).c_str(), extra.empty() ? "" : ", ",
                 extra.c_str());
}

}  // namespace surgeon
