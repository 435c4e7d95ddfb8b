// core/video_io round trips: write MP4 / GIF / PNG, read back with ffmpeg, compare roughly (lossy codecs);
// contact-sheet layout; clear errors for bad paths and shapes. Needs the ffmpeg program.
// Run: ctest --test-dir build -R 'VideoIO'
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/fs.h"
#include "core/error.h"
#include "core/video_io.h"
#include "testing/testing.h"

namespace surgeon::testing {
namespace {
namespace fs = std::filesystem;

// A smooth moving pattern in [-1, 1], [3, T, H, W]: compresses well, so codec error stays small.
torch::Tensor test_video(int64_t t, int64_t h, int64_t w) {
    auto ts = torch::arange(t).view({1, t, 1, 1}).to(torch::kFloat);
    auto ys = torch::arange(h).view({1, 1, h, 1}).to(torch::kFloat) / h;
    auto xs = torch::arange(w).view({1, 1, 1, w}).to(torch::kFloat) / w;
    auto ch = torch::arange(3).view({3, 1, 1, 1}).to(torch::kFloat);
    return torch::sin(3.0 * xs + 2.0 * ys + 0.3 * ts + 2.0 * ch) * 0.8;  // [3, T, H, W]
}

double mean_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().mean().item<double>(); }

bool have_ffmpeg() { return std::system("ffmpeg -version >/dev/null 2>&1") == 0; }

// Writes v to `path` at `fps`, reads it back and expects the same shape and a mean error below `tolerance`.
void expect_round_trip(const std::string& path, const torch::Tensor& v, int fps, double tolerance) {
    write_video(path, v, fps);
    auto r = read_video(path);
    ASSERT_EQ(r.sizes().vec(), v.sizes().vec()) << path;
    EXPECT_LT(mean_abs(r, v), tolerance) << path;
}

TEST(VideoIO, Mp4RoundTrip) {
    if (!have_ffmpeg()) GTEST_SKIP() << "ffmpeg not installed";
    const auto dir = temp_dir("vio_mp4");
    expect_round_trip(dir + "/a.mp4", test_video(9, 32, 48), 16, 0.03);
    EXPECT_EQ(read_video(dir + "/a.mp4", 4).size(1), 4);
    // Odd sizes are padded to even ones for H.264.
    write_video(dir + "/odd.mp4", test_video(3, 17, 23), 8);
    auto odd = read_video(dir + "/odd.mp4");
    EXPECT_EQ(odd.sizes().vec(), (std::vector<int64_t>{3, 3, 18, 24}));
    // No temp files are left behind.
    int n_files = 0;
    for (const auto& e : fs::directory_iterator(dir)) n_files += e.is_regular_file();
    EXPECT_EQ(n_files, 2);
    remove_tree(dir);
}

TEST(VideoIO, GifRoundTrip) {
    if (!have_ffmpeg()) GTEST_SKIP() << "ffmpeg not installed";
    const auto dir = temp_dir("vio_gif");
    expect_round_trip(dir + "/a.gif", test_video(5, 32, 48), 10, 0.05);
    remove_tree(dir);
}

TEST(VideoIO, PngContactSheetRoundTrip) {
    if (!have_ffmpeg()) GTEST_SKIP() << "ffmpeg not installed";
    const auto dir = temp_dir("vio_png");
    const auto v = test_video(5, 32, 48);
    const auto sheet = contact_sheet(v, 3);  // 2 rows x 3 columns, 2-pixel gaps
    EXPECT_EQ(sheet.sizes().vec(), (std::vector<int64_t>{3, 2 * 32 + 2, 3 * 48 + 2 * 2}));
    EXPECT_TRUE(torch::equal(sheet.slice(1, 34, 66).slice(2, 50, 98), v.select(1, 4)));
    write_video(dir + "/a.png", v);  // the default sheet: one row of 5 frames
    auto r = read_video(dir + "/a.png");
    const auto expect = contact_sheet(v);
    ASSERT_EQ(r.sizes().vec(), (std::vector<int64_t>{3, 1, expect.size(1), expect.size(2)}));
    EXPECT_LE((r.select(1, 0) - expect).abs().max().item<double>(), 1.0 / 127.5 + 1e-6);  // 8-bit rounding only
    const auto rows = contact_sheet_rows({v, test_video(2, 32, 48)});
    EXPECT_EQ(rows.sizes().vec(), (std::vector<int64_t>{3, 32 * 2 + 2, 5 * 48 + 4 * 2}));
    remove_tree(dir);
}

TEST(VideoIO, ClearErrors) {
    const auto dir = temp_dir("vio_err");
    auto msg_of = [](const std::function<void()>& f) -> std::string {
        try {
            f();
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    };
    EXPECT_NE(msg_of([&] { write_video(dir + "/a.avi", test_video(2, 8, 8)); }).find("unknown extension"),
              std::string::npos);
    EXPECT_NE(msg_of([&] { write_video(dir + "/a.mp4", torch::zeros({4, 2, 8, 8})); }).find("expected a video"),
              std::string::npos);
    EXPECT_NE(msg_of([&] { read_video(dir + "/missing.mp4"); }).find("does not exist"), std::string::npos);
    if (have_ffmpeg()) {
        std::ofstream(dir + "/junk.mp4") << "not a video";
        EXPECT_NE(msg_of([&] { read_video(dir + "/junk.mp4"); }).find("junk.mp4"), std::string::npos);
        EXPECT_NE(msg_of([&] { write_video(dir + "/no/such/dir/a.mp4", test_video(2, 8, 8)); }).find("ffmpeg failed"),
                  std::string::npos);
    }
    remove_tree(dir);
}

}  // namespace
}  // namespace surgeon::testing
