#include "attention/attention_latency.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "attention/hybrid_attention.h"
#include "attention/softmax_attention.h"
#include "core/error.h"

namespace surgeon {

double attention_latency_ms(const PlanEntry& entry, int64_t num_heads, int64_t head_dim, const TokenGrid& grid,
                            const LatencyOptions& o) {
    SURGEON_CHECK(num_heads > 0 && head_dim > 0, "latency: heads and head dim must be > 0, got {} x {}", num_heads,
                  head_dim);
    SURGEON_CHECK(o.iters > 0 && o.warmup >= 0, "latency: iters must be > 0 and warm-up >= 0, got {} and {}", o.iters,
                  o.warmup);
    const PlanEntry e = entry.normalized(head_dim);
    validate_entry(e, head_dim, &grid, "latency");
    torch::NoGradGuard no_grad;
    AttentionCore core;
    if (e.kind == AttentionKind::Softmax) {
        core = std::make_shared<SoftmaxAttentionImpl>();
    } else {
        auto hybrid = std::make_shared<HybridAttentionImpl>(e, num_heads, head_dim, o.seed);
        hybrid->to(o.device);
        core = hybrid;
    }
    const bool cuda = o.device.is_cuda();
    const auto opt = torch::TensorOptions().dtype(cuda ? torch::kBFloat16 : torch::kFloat32).device(o.device);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    const std::vector<int64_t> shape = {1, grid.tokens(), num_heads, head_dim};
    auto draw = [&] { return at::randn(shape, gen, torch::kFloat32).to(opt); };  // same draws on every device
    const auto q = draw(), k = draw(), v = draw();
    auto sync = [&] {
        if (cuda) torch::cuda::synchronize(o.device.has_index() ? o.device.index() : -1);
    };
    std::vector<double> ms;
    for (int64_t i = 0; i < o.warmup + o.iters; ++i) {
        sync();
        const auto t0 = std::chrono::steady_clock::now();
        core->forward(q, k, v, grid);
        sync();
        const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (i >= o.warmup) ms.push_back(t);
    }
    std::nth_element(ms.begin(), ms.begin() + static_cast<long>(ms.size() / 2), ms.end());
    return ms[ms.size() / 2];
}

}  // namespace surgeon
