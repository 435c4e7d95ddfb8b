// Tensor validation helpers.
#include "core/tensor_checks.h"

#include "core/error.h"

namespace surgeon {

std::string shape_str(c10::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

void check_finite(const std::string& name, const torch::Tensor& t) {
    if (!t.is_floating_point()) return;
    SURGEON_CHECK(torch::isfinite(t).all().item<bool>(), "tensor '{}' contains NaN or Inf", name);
}

void check_shape(const std::string& name, const torch::Tensor& t, const std::vector<int64_t>& shape) {
    bool ok = t.dim() == static_cast<int64_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || shape[i] == t.size(i);
    if (!ok) {
        std::vector<std::string> s;
        for (auto d : shape) s.push_back(d < 0 ? "*" : std::to_string(d));
        fail("tensor '{}': expected shape [{}], got {}", name, fmt::join(s, ", "), shape_str(t.sizes()));
    }
}

const torch::Tensor& require_tensor(const TensorMap& m, const std::string& name, const std::string& file) {
    auto it = m.find(name);
    SURGEON_CHECK(it != m.end(), "{}: missing tensor '{}'", file, name);
    return it->second;
}

}  // namespace surgeon
