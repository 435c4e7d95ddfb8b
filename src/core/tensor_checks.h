// Input validation helpers for tensors coming from users: each failure is one line naming the tensor.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/safetensors.h"

namespace surgeon {

// Throws "tensor 'name': contains NaN or Inf" if any element is not finite.
void check_finite(const std::string& name, const torch::Tensor& t);
// Throws "tensor 'name': expected N dims [..], got [..]"; -1 in `shape` matches anything.
void check_shape(const std::string& name, const torch::Tensor& t, const std::vector<int64_t>& shape);
// Looks up `name` in `m` (a tensor file's contents); error names the file.
const torch::Tensor& require_tensor(const TensorMap& m, const std::string& name, const std::string& file);
std::string shape_str(c10::IntArrayRef s);

}  // namespace surgeon
