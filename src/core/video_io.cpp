// Video and image files: MP4/GIF through the `ffmpeg` program (raw rgb24 frames over a pipe, written to a
// temp file then renamed), PNG through stb_image_write, reading through ffmpeg/ffprobe. No shell is
// involved: ffmpeg is started with fork/execvp, so paths need no quoting.
#include "core/video_io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

namespace surgeon {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kGap = 2;  // pixels between tiles of a contact sheet

std::string lower_ext(const std::string& path) {
    auto e = fs::path(path).extension().string();
    for (auto& ch : e) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return e;
}

// A temp path beside `path` keeping its extension (ffmpeg picks formats by extension).
std::string temp_beside(const std::string& path) {
    const fs::path p(path);
    return (p.parent_path() / ("." + p.stem().string() + ".tmp" + std::to_string(::getpid()) + p.extension().string()))
        .string();
}

struct ProcessResult {
    int exit_code = -1;
    std::string out, err;
};

// Runs argv[0] (looked up in PATH) with `input` on stdin; collects stdout when `want_stdout`. stderr goes
// to a temp file (read back afterwards), so only one pipe is ever live and nothing can deadlock.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string* input, bool want_stdout) {
    ProcessResult r;
    char err_template[] = "/tmp/surgeon_ffmpeg_err_XXXXXX";
    const int err_fd = ::mkstemp(err_template);
    SURGEON_CHECK(err_fd >= 0, "cannot create a temp file for {}'s messages: {}", argv[0], std::strerror(errno));
    int pipe_fd[2];
    SURGEON_CHECK(::pipe(pipe_fd) == 0, "cannot create a pipe for {}: {}", argv[0], std::strerror(errno));

    // Everything the child needs is prepared before fork (no allocation between fork and exec).
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    static const char kExecFailed[] = "exec failed: program not found\n";
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int devnull = ::open("/dev/null", O_RDWR);
        if (input != nullptr) {
            ::dup2(pipe_fd[0], 0);
            ::dup2(devnull, 1);
        } else {
            ::dup2(devnull, 0);
            ::dup2(want_stdout ? pipe_fd[1] : devnull, 1);
        }
        ::dup2(err_fd, 2);
        ::close(pipe_fd[0]);
        ::close(pipe_fd[1]);
        ::execvp(args[0], args.data());
        (void)!::write(2, kExecFailed, sizeof(kExecFailed) - 1);
        ::_exit(127);
    }
    if (pid < 0) {
        ::close(pipe_fd[0]), ::close(pipe_fd[1]), ::close(err_fd), ::unlink(err_template);
        fail("cannot start {}: {}", argv[0], std::strerror(errno));
    }
    if (input != nullptr) {
        ::close(pipe_fd[0]);
        // A dying child must not kill us with SIGPIPE: ignore it while writing, report the exit code instead.
        struct sigaction ignore {}, old {};
        ignore.sa_handler = SIG_IGN;
        ::sigaction(SIGPIPE, &ignore, &old);
        size_t off = 0;
        while (off < input->size()) {
            const ssize_t n = ::write(pipe_fd[1], input->data() + off, input->size() - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
        ::close(pipe_fd[1]);
        ::sigaction(SIGPIPE, &old, nullptr);
    } else {
        ::close(pipe_fd[1]);
        char buf[1 << 16];
        while (true) {
            const ssize_t n = ::read(pipe_fd[0], buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            if (want_stdout) r.out.append(buf, static_cast<size_t>(n));
        }
        ::close(pipe_fd[0]);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    ::close(err_fd);
    r.err = read_text_file(err_template);
    ::unlink(err_template);
    return r;
}

std::string last_line(const std::string& s) {
    std::istringstream in(s);
    std::string line, last;
    while (std::getline(in, line)) {
        if (!line.empty()) last = line;
    }
    return last.empty() ? "(no message)" : last;
}

void check_video(const torch::Tensor& v, const char* what) {
    SURGEON_CHECK(v.defined() && v.dim() == 4 && v.size(0) == 3 && v.size(1) >= 1 && v.size(2) >= 1 && v.size(3) >= 1,
                  "{}: expected a video [3, T, H, W], got {}", what, v.defined() ? c10::str(v.sizes()) : "nothing");
    SURGEON_CHECK(v.is_floating_point(), "{}: expected a float video, got {}", what, c10::toString(v.scalar_type()));
}

// [3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3] (contiguous, CPU).
torch::Tensor to_rgb24(const torch::Tensor& video) {
    auto v = video.detach().to(torch::kCPU, torch::kFloat).clamp(-1, 1);
    return ((v + 1.0) * 127.5).round().to(torch::kUInt8).permute({1, 2, 3, 0}).contiguous();  // [T, H, W, 3]
}

void run_ffmpeg_writer(const std::string& path, const torch::Tensor& video, int fps, bool gif) {
    const auto rgb = to_rgb24(video);  // [T, H, W, 3]
    const int64_t h = rgb.size(1), w = rgb.size(2);
    const std::string input(reinterpret_cast<const char*>(rgb.data_ptr<uint8_t>()), static_cast<size_t>(rgb.numel()));
    const auto tmp = temp_beside(path);
    std::vector<std::string> argv{"ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
                                  "rgb24", "-s", std::to_string(w) + "x" + std::to_string(h), "-r", std::to_string(fps),
                                  "-i", "-"};
    if (gif) {
        argv.insert(argv.end(), {"-vf", "split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=none",
                                 "-loop", "0", "-f", "gif"});
    } else {
        // H.264 needs even sizes: pad right/bottom by at most one pixel.
        argv.insert(argv.end(), {"-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                                 "-crf", "18", "-movflags", "+faststart", "-f", "mp4"});
    }
    argv.push_back(tmp);
    // POSIX remove/rename: std::filesystem's are interposed by libtorch's exported copies (see core/fs.h).
    ProcessResult r;
    try {
        r = run_process(argv, &input, false);
    } catch (...) {
        ::remove(tmp.c_str());
        throw;
    }
    if (r.exit_code != 0) {
        ::remove(tmp.c_str());
        fail("ffmpeg failed writing '{}' (exit {}): {}", path, r.exit_code,
             r.exit_code == 127 ? "is the ffmpeg program installed?" : last_line(r.err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        ::remove(tmp.c_str());
        fail("cannot rename the temp file to '{}': {}", path, why);
    }
}

}  // namespace

torch::Tensor contact_sheet(const torch::Tensor& video, int64_t columns) {
    check_video(video, "contact_sheet");
    SURGEON_CHECK(columns >= 1, "contact_sheet: columns must be >= 1, got {}", columns);
    const int64_t t = video.size(1), h = video.size(2), w = video.size(3);
    const int64_t cols = std::min(columns, t), rows = (t + cols - 1) / cols;
    auto sheet = torch::full({3, rows * h + (rows - 1) * kGap, cols * w + (cols - 1) * kGap}, -1.0,
                             video.options());  // [3, H', W'], gaps black
    for (int64_t i = 0; i < t; ++i) {
        const int64_t y = (i / cols) * (h + kGap), x = (i % cols) * (w + kGap);
        sheet.slice(1, y, y + h).slice(2, x, x + w).copy_(video.select(1, i));
    }
    return sheet;
}

torch::Tensor contact_sheet_rows(const std::vector<torch::Tensor>& videos) {
    SURGEON_CHECK(!videos.empty(), "contact_sheet_rows: no videos");
    std::vector<torch::Tensor> rows;
    int64_t width = 0, height = 0;
    for (const auto& v : videos) {
        rows.push_back(contact_sheet(v, v.size(1)));  // one row with every frame
        width = std::max(width, rows.back().size(2));
        height += rows.back().size(1);
    }
    height += (static_cast<int64_t>(rows.size()) - 1) * kGap;
    auto sheet = torch::full({3, height, width}, -1.0, rows[0].options());  // [3, H', W']
    int64_t y = 0;
    for (const auto& r : rows) {
        sheet.slice(1, y, y + r.size(1)).slice(2, 0, r.size(2)).copy_(r);
        y += r.size(1) + kGap;
    }
    return sheet;
}

void write_png(const std::string& path, const torch::Tensor& image) {
    SURGEON_CHECK(image.defined() && image.dim() == 3 && image.size(0) == 3,
                  "write_png '{}': expected an image [3, H, W], got {}", path,
                  image.defined() ? c10::str(image.sizes()) : "nothing");
    const auto rgb = to_rgb24(image.unsqueeze(1)).squeeze(0);  // [H, W, 3]
    const int h = static_cast<int>(rgb.size(0)), w = static_cast<int>(rgb.size(1));
    std::string png;
    auto sink = [](void* ctx, void* data, int size) {
        static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
    };
    SURGEON_CHECK(stbi_write_png_to_func(sink, &png, w, h, 3, rgb.data_ptr<uint8_t>(), w * 3) != 0,
                  "write_png '{}': PNG encoding failed", path);
    atomic_write(path, [&](std::ostream& out) { out.write(png.data(), static_cast<std::streamsize>(png.size())); });
}

void write_video(const std::string& path, const torch::Tensor& video, int fps) {
    check_video(video, ("write_video '" + path + "'").c_str());
    SURGEON_CHECK(fps >= 1, "write_video '{}': fps must be >= 1, got {}", path, fps);
    const auto e = lower_ext(path);
    if (e == ".png") return write_png(path, contact_sheet(video.detach().to(torch::kCPU, torch::kFloat)));
    SURGEON_CHECK(e == ".mp4" || e == ".gif", "write_video '{}': unknown extension '{}' (expected .mp4, .gif or .png)",
                  path, e);
    run_ffmpeg_writer(path, video, fps, e == ".gif");
}

torch::Tensor read_video(const std::string& path, int64_t max_frames) {
    SURGEON_CHECK(fs::is_regular_file(path), "video file '{}' does not exist", path);
    auto probe = run_process({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                              "stream=width,height", "-of", "csv=p=0:s=x", path},
                             nullptr, true);
    SURGEON_CHECK(probe.exit_code == 0, "cannot read video '{}': ffprobe {}", path,
                  probe.exit_code == 127 ? "is not installed" : "failed: " + last_line(probe.err));
    int64_t w = 0, h = 0;
    {
        std::string s = probe.out;
        s.erase(std::remove_if(s.begin(), s.end(), [](char ch) { return std::isspace(static_cast<unsigned char>(ch)); }),
                s.end());
        const auto x = s.find('x');
        try {
            if (x != std::string::npos) w = std::stoll(s.substr(0, x)), h = std::stoll(s.substr(x + 1));
        } catch (const std::exception&) {
            w = h = 0;
        }
    }
    SURGEON_CHECK(w > 0 && h > 0, "cannot read video '{}': no video stream found", path);
    std::vector<std::string> argv{"ffmpeg", "-nostdin", "-loglevel", "error", "-i", path};
    if (max_frames > 0) argv.insert(argv.end(), {"-frames:v", std::to_string(max_frames)});
    argv.insert(argv.end(), {"-f", "rawvideo", "-pix_fmt", "rgb24", "-"});
    auto r = run_process(argv, nullptr, true);
    SURGEON_CHECK(r.exit_code == 0, "cannot decode video '{}': ffmpeg failed: {}", path, last_line(r.err));
    const int64_t frame_bytes = w * h * 3, t = static_cast<int64_t>(r.out.size()) / frame_bytes;
    SURGEON_CHECK(t >= 1, "video '{}' has no frames", path);
    auto rgb = torch::from_blob(r.out.data(), {t, h, w, 3}, torch::kUInt8);        // [T, H, W, 3], borrowed
    return rgb.permute({3, 0, 1, 2}).to(torch::kFloat).div(127.5).sub(1.0).contiguous();  // [3, T, H, W] in [-1, 1]
}

}  // namespace surgeon
