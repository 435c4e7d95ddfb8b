// Video and image files. Videos are float tensors [3, T, H, W] with values in [-1, 1] (Wan's convention).
// MP4 and GIF go through the ffmpeg program (Debian package), PNG through stb_image_write.
#pragma once
#include <torch/torch.h>

#include <string>

namespace surgeon {

// Writes by extension: .mp4 (H.264 via ffmpeg, yuv420p, even sizes padded), .gif (ffmpeg palette),
// .png (a contact sheet of all frames, see contact_sheet). Atomic: temp file + rename.
void write_video(const std::string& path, const torch::Tensor& video, int fps = 16);
// Reads a video file (anything ffmpeg decodes; also .png as a single frame) -> [3, T, H, W] in [-1, 1].
torch::Tensor read_video(const std::string& path, int64_t max_frames = -1);
// [3, H, W] in [-1, 1] -> PNG (atomic).
void write_png(const std::string& path, const torch::Tensor& image);
// Tiles the frames of [3, T, H, W] into a grid with `columns` columns and a 2-pixel gap -> [3, H', W'].
torch::Tensor contact_sheet(const torch::Tensor& video, int64_t columns = 8);
// Stacks several videos' contact sheets vertically (one row of frames per video) -> [3, H', W'].
torch::Tensor contact_sheet_rows(const std::vector<torch::Tensor>& videos);

}  // namespace surgeon
