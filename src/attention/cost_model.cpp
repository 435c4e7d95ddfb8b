// Attention FLOPs of method.md §6, counted exactly from the key sets T_S(i), T_L of each kind.
#include "attention/cost_model.h"

#include <algorithm>

namespace surgeon {

int64_t softmax_pairs(const PlanEntry& e, const TokenGrid& grid) {
    const int64_t N = grid.tokens(), HW = grid.tokens_per_frame(), F = grid.frames;
    switch (e.kind) {
        case AttentionKind::Softmax: return N * N;
        case AttentionKind::Linear: return 0;
        case AttentionKind::Hybrid: return N * ((N + e.rate - 1) / e.rate);  // |T_S| = ceil(N/R) for every query
        case AttentionKind::Chunked: {
            int64_t pairs = 0;
            for (int64_t f0 = 0; f0 < F; f0 += e.chunk) {
                const int64_t f1 = std::min(f0 + e.chunk, F), lo = std::max<int64_t>(0, f0 - e.overlap);
                pairs += (f1 - f0) * HW * (f1 - lo) * HW;
            }
            return pairs;
        }
    }
    return 0;
}

int64_t linear_keys(const PlanEntry& e, const TokenGrid& grid) {
    const int64_t N = grid.tokens(), HW = grid.tokens_per_frame(), F = grid.frames;
    switch (e.kind) {
        case AttentionKind::Softmax: return 0;
        case AttentionKind::Linear: return N;
        case AttentionKind::Hybrid: return N - (N + e.rate - 1) / e.rate;
        case AttentionKind::Chunked: {
            if (e.chunk >= F) return 0;  // one chunk: every key is a softmax key
            if (!e.causal) return N;     // every key is a linear key of some other chunk
            // Causal: keys before the last chunk's window enter the running state.
            const int64_t last_start = ((F - 1) / e.chunk) * e.chunk;
            return std::max<int64_t>(0, last_start - e.overlap) * HW;
        }
    }
    return 0;
}

AttentionFlops block_attention_flops(const PlanEntry& e, int64_t H, int64_t D, const TokenGrid& grid) {
    AttentionFlops f;
    const double N = static_cast<double>(grid.tokens());
    f.softmax = 4.0 * H * D * static_cast<double>(softmax_pairs(e, grid));
    if (!e.has_linear_branch()) return f;
    if (e.has_softmax_branch() && e.stabilizer == Stabilizer::Max)
        f.stabilizer = 2.0 * H * D * static_cast<double>(softmax_pairs(e, grid));
    const auto fm = e.feature_map.resolved(D);
    const double Dp = static_cast<double>(feature_dim(fm, D));
    f.linear_state = 2.0 * H * Dp * D * static_cast<double>(linear_keys(e, grid));
    f.linear_apply = 2.0 * H * N * Dp * (D + 1);
    if (fm.kind == FeatureMapKind::Poly)
        f.feature_maps = 2 * (2.0 * H * N * (D * fm.hidden + fm.hidden * fm.parts * D));  // q and k maps
    else if (fm.kind == FeatureMapKind::Hedgehog)
        f.feature_maps = 2 * (2.0 * H * N * D * D);
    return f;
}

double teacher_attention_flops(int64_t H, int64_t D, const TokenGrid& grid) {
    const double N = static_cast<double>(grid.tokens());
    return 4.0 * H * D * N * N;
}

PlanFlops plan_attention_flops(const AttentionPlan& plan, int64_t H, int64_t D, const TokenGrid& grid) {
    PlanFlops p;
    for (const auto& e : plan.blocks) {
        p.blocks.push_back(block_attention_flops(e, H, D, grid));
        p.total += p.blocks.back().total();
        p.teacher_total += teacher_attention_flops(H, D, grid);
    }
    return p;
}

}  // namespace surgeon
