// Hybrid / linear / chunked attention cores (method.md §2–3): the literal Reference twin (explicit scores in
// query tiles), the Fast composite path (SDPA on the softmax keys + GEMM states with S_L = S_all - S_S, then a
// joint-normalised combine) and the recurrent form of causal chunking (running S, z; memory independent of the
// number of chunks). Tests: tests/attention/test_hybrid_attention.cpp; bench: benchmarks/bench_attention.cpp.
#pragma once
#include <deque>

#include "attention/attention_core.h"
#include "attention/attention_plan.h"
#include "attention/feature_maps.h"

namespace surgeon {

// q, k, v [B, N, H, D] (after q/k norm + RoPE); phi_q, phi_k [B, N, H, D'] (non-negative features);
// grid.tokens() == N. Returns [B, N, H, D]: v's dtype for Fast, float32 (float64 for float64 inputs) for
// Reference. Fast: softmax branch in the inputs' dtype (SDPA), states and combine in float32.
// Both paths are differentiable w.r.t. q, k, v, phi_q, phi_k.
torch::Tensor hybrid_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& phi_q, const torch::Tensor& phi_k, const PlanEntry& entry,
                               const TokenGrid& grid, AttentionImpl impl, int64_t tile = 512);

// Causal chunked attention evaluated chunk by chunk with a CausalChunkState (same output as the parallel form).
torch::Tensor chunked_causal_recurrent(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& phi_q, const torch::Tensor& phi_k, const PlanEntry& entry,
                                       const TokenGrid& grid);

// Streaming causal chunked attention (ReHyAt's RNN form): feed the tokens of consecutive chunks of T_c frames
// (the last may be shorter); keeps S [B,H,D',D], z [B,H,D'] over frames before the overlap window and the k, v,
// phi_k of at most T_o earlier frames, so memory does not grow with the number of chunks.
class CausalChunkState {
public:
    CausalChunkState(const PlanEntry& entry, int64_t tokens_per_frame);
    // q, k, v [B, n, H, D], phi_q, phi_k [B, n, H, D'] with n = frames * tokens_per_frame -> [B, n, H, D] float32.
    torch::Tensor step(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& phi_q, const torch::Tensor& phi_k);
    int64_t frames_seen() const { return frames_seen_; }
    int64_t cached_frames() const { return static_cast<int64_t>(cache_.size()); }

private:
    struct Frame {
        torch::Tensor k, v, phi_k;  // [B, H, HW, D] (k, v in input dtype), [B, H, HW, D'] float32
    };
    PlanEntry entry_;
    int64_t hw_;
    int64_t frames_seen_ = 0;
    torch::Tensor S_, z_;  // [B, H, D', D], [B, H, D'] float32; undefined until the first fold
    std::deque<Frame> cache_;
};

// The pluggable core for kinds hybrid, linear and chunked: owns the per-head feature maps phi_q and phi_k
// (parameters `phi_q.*`, `phi_k.*`, so `blocks.N.self_attn.attn.phi_q.w1` in a model).
class HybridAttentionImpl : public AttentionCoreImpl {
public:
    // Feature-map weights drawn from a CPU generator seeded with `seed` (q and k maps from different streams).
    HybridAttentionImpl(const PlanEntry& entry, int64_t num_heads, int64_t head_dim, uint64_t seed);
    torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const TokenGrid& grid) override;
    std::string describe() const override { return entry_.describe(); }
    const PlanEntry& entry() const { return entry_; }
    // Causal chunked + Fast: evaluate with CausalChunkState instead of the parallel form (inference).
    void set_recurrent(bool on) { recurrent_ = on; }
    // Feature maps in the dtype the path computes them in (Reference: float32/float64, Fast: q's dtype).
    std::pair<torch::Tensor, torch::Tensor> features(const torch::Tensor& q, const torch::Tensor& k) const;

    FeatureMap phi_q{nullptr}, phi_k{nullptr};

private:
    PlanEntry entry_;
    int64_t num_heads_, head_dim_;
    bool recurrent_ = false;
};
TORCH_MODULE(HybridAttention);

// Reference twin of hybrid_attention (hybrid_attention(..., Reference) calls it). Evaluates only the queries
// [q_begin, q_begin + q_count) (all keys; q_count < 0: to the end) -> [B, q_count, H, D], e.g. to check a
// slice of a large problem (benchmarks/bench_attention.cpp).
torch::Tensor hybrid_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& phi_q, const torch::Tensor& phi_k,
                                         const PlanEntry& entry, const TokenGrid& grid, int64_t tile,
                                         int64_t q_begin = 0, int64_t q_count = -1);

namespace detail {
// Softmax branch over keys k, v [B, H, Nk, D] for queries q [B, H, Nq, D] (inputs' dtype):
// o = softmax(q k^T / sqrt(D)) v in float32 [B, H, Nq, D]; for Max also log_a = lse - rowmax [B, H, Nq, 1]
// (differentiable; the row max via an argmax pass and a differentiable gather), undefined for Lse (a = 1).
struct SoftmaxBranch {
    torch::Tensor o, log_a;
};
SoftmaxBranch softmax_branch(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             Stabilizer stabilizer, int64_t tile = 1024);
// Joint normalisation: (a*o + num_l) / (a + den_l) with a = exp(log_a) (1 if undefined). Shapes [B,H,N,D]/[..,1].
torch::Tensor combine(const SoftmaxBranch& s, const torch::Tensor& num_l, const torch::Tensor& den_l);
}  // namespace detail

}  // namespace surgeon
