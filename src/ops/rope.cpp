// RoPE tables and rotation.
#include "ops/rope.h"

#include <cmath>

#include "core/error.h"
#include "kernels/rope.h"

#ifdef SURGEON_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace surgeon {

torch::Tensor rope_angles(int64_t head_dim, const TokenGrid& grid) {
    const int64_t c = head_dim / 2;
    const int64_t ch = c / 3, ct = c - 2 * ch;
    SURGEON_CHECK(grid.frames <= 1024 && grid.height <= 1024 && grid.width <= 1024,
                  "RoPE supports at most 1024 positions per axis, got grid {}x{}x{}", grid.frames, grid.height,
                  grid.width);
    auto opts = torch::TensorOptions().dtype(torch::kFloat64);
    // rope_params(1024, dim): angle[p, j] = p * theta^(-(2j)/dim), computed in float64.
    auto axis = [&](int64_t n, int64_t pairs) {
        auto j = torch::arange(0, 2 * pairs, 2, opts) / static_cast<double>(2 * pairs);
        auto inv = torch::pow(10000.0, -j);                    // [pairs]
        return torch::outer(torch::arange(n, opts), inv);       // [n, pairs]
    };
    auto at = axis(grid.frames, ct), ah = axis(grid.height, ch), aw = axis(grid.width, ch);
    const int64_t F = grid.frames, H = grid.height, W = grid.width;
    auto t = at.view({F, 1, 1, ct}).expand({F, H, W, ct});
    auto h = ah.view({1, H, 1, ch}).expand({F, H, W, ch});
    auto w = aw.view({1, 1, W, ch}).expand({F, H, W, ch});
    return torch::cat({t, h, w}, -1).reshape({F * H * W, c});  // [L, D/2]
}

RopeTables rope_tables(int64_t head_dim, const TokenGrid& grid, torch::ScalarType dtype, torch::Device device) {
    auto a = rope_angles(head_dim, grid);
    return {torch::cos(a).to(device, dtype), torch::sin(a).to(device, dtype)};
}

#ifdef SURGEON_HAVE_CUDA
namespace {
// out = rotate(x, angle) through the fused kernel; float32 math, float32 output.
torch::Tensor rope_kernel(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    auto xf = x.to(torch::kFloat32).contiguous();
    auto c = cos.to(torch::kFloat32).contiguous(), s = sin.to(torch::kFloat32).contiguous();
    auto out = torch::empty_like(xf);
    kernels::RopeParams p;
    p.x = xf.data_ptr<float>();
    p.out = out.data_ptr<float>();
    p.cos = c.data_ptr<float>();
    p.sin = s.data_ptr<float>();
    p.batch = x.size(0), p.tokens = x.size(1), p.heads = x.size(2), p.pairs = x.size(3) / 2;
    const char* err = kernels::rope_apply_cuda(p, at::cuda::getCurrentCUDAStream().stream());
    SURGEON_CHECK(err == nullptr, "RoPE kernel launch failed: {}", err ? err : "");
    return out;
}

// Autograd for the kernel: the rotation is orthogonal, so the gradient is the rotation by -angle
// (the same kernel with sin negated). Without this the q/k projections get no gradient in training.
struct RopeFunction : public torch::autograd::Function<RopeFunction> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                                 const torch::Tensor& sin) {
        ctx->save_for_backward({cos, sin});
        ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
        return rope_kernel(x, cos, sin);
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        auto saved = ctx->get_saved_variables();
        auto g = rope_kernel(grads[0], saved[0], -saved[1]);
        const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["dtype"].toInt());
        return {g.to(dtype), torch::Tensor(), torch::Tensor()};
    }
};
}  // namespace
#endif

torch::Tensor rope_apply(const torch::Tensor& x, const RopeTables& tables, AttentionImpl impl) {
    SURGEON_ASSERT(x.dim() == 4 && x.size(3) % 2 == 0);
    const int64_t B = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3) / 2;
    SURGEON_ASSERT(tables.cos.size(0) == L && tables.cos.size(1) == P);
#ifdef SURGEON_HAVE_CUDA
    if (impl == AttentionImpl::Fast && x.is_cuda()) return RopeFunction::apply(x, tables.cos, tables.sin);
#endif
    // Official rope_apply: view as complex pairs, multiply by polar(1, angle) in float64, back to float32.
    auto cd = tables.cos.to(torch::kFloat64).view({1, L, 1, P});
    auto sd = tables.sin.to(torch::kFloat64).view({1, L, 1, P});
    auto xd = x.to(torch::kFloat64).reshape({B, L, H, P, 2});
    auto x0 = xd.select(-1, 0), x1 = xd.select(-1, 1);                      // [B, L, H, P]
    auto out = torch::stack({x0 * cd - x1 * sd, x0 * sd + x1 * cd}, -1);  // [B, L, H, P, 2]
    return out.reshape({B, L, H, 2 * P}).to(torch::kFloat32);
}

}  // namespace surgeon
