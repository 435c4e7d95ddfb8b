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
// Both paths are differentiable w.r.t. q, k, v, phi_q, phi_k and log_scale.
//
// The linear branch's weight (method.md §4, "balance at initialisation"): with log_scale s [H] defined, query i of
// head h weighs its linear terms by lambda_h(i) = exp(s_h) / max(1, |T_L(i)|):
//   y_i = (a_i o_i + lambda phi_q(q_i)^T S_L) / (a_i + lambda phi_q(q_i)^T z_L)
// so exp(s_h) is the linear branch's mass relative to the softmax branch's (a_i = 1 for lse) when
// phi_q(q)^T phi_k(k) averages 1, independent of the key count. Undefined log_scale: lambda = 1 (the paper's
// unweighted form). A pure linear kind has no softmax branch and lambda cancels.
torch::Tensor hybrid_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& phi_q, const torch::Tensor& phi_k, const PlanEntry& entry,
                               const TokenGrid& grid, AttentionImpl impl, int64_t tile = 512,
                               const torch::Tensor& log_scale = {});

// The fast path for queries q, phi_q [B, n, H, *] that are any n of the grid's N tokens, against all keys k, v, phi_k
// [B, N, H, *]: rows of hybrid_attention's output at those queries. Hybrid (uniform rate) and linear kinds only,
// whose key sets T_S, T_L do not depend on the query (stage 1 trains on query subsets to save time).
torch::Tensor hybrid_attention_query_subset(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& phi_q, const torch::Tensor& phi_k,
                                            const PlanEntry& entry, const TokenGrid& grid,
                                            const torch::Tensor& log_scale = {});

// Causal chunked attention evaluated chunk by chunk with a CausalChunkState (same output as the parallel form).
torch::Tensor chunked_causal_recurrent(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& phi_q, const torch::Tensor& phi_k, const PlanEntry& entry,
                                       const TokenGrid& grid, const torch::Tensor& log_scale = {});

// Streaming causal chunked attention (ReHyAt's RNN form): feed the tokens of consecutive chunks of T_c frames
// (the last may be shorter); keeps S [B,H,D',D], z [B,H,D'] over frames before the overlap window and the k, v,
// phi_k of at most T_o earlier frames, so memory does not grow with the number of chunks.
class CausalChunkState {
public:
    // log_scale [H] (optional): the linear branch's weight, as in hybrid_attention.
    CausalChunkState(const PlanEntry& entry, int64_t tokens_per_frame, torch::Tensor log_scale = {});
    // q, k, v [B, n, H, D], phi_q, phi_k [B, n, H, D'] with n = frames * tokens_per_frame -> [B, n, H, D] float32.
    torch::Tensor step(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& phi_q, const torch::Tensor& phi_k);
    int64_t frames_seen() const { return frames_seen_; }
    int64_t cached_frames() const { return static_cast<int64_t>(cache_.size()); }

private:
    struct Frame {
        // [B, H, HW, D] (k, v in input dtype), [B, H, HW, D'] (float32; the input dtype on the inference path)
        torch::Tensor k, v, phi_k;
    };
    // CUDA without autograd: bf16 GEMM folds into S_ = [S | z | 0] [B, H, D', D+8] (z_ undefined), fused combine.
    torch::Tensor step_inference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& phi_q, const torch::Tensor& phi_k);
    PlanEntry entry_;
    int64_t hw_;
    torch::Tensor log_scale_;
    int64_t frames_seen_ = 0, frames_folded_ = 0;
    torch::Tensor S_, z_;  // [B, H, D', D], [B, H, D'] float32; undefined until the first fold
    std::deque<Frame> cache_;
    // Softmax keys and values of a step: the cached overlap frames, then the chunk's own ([B, H, L, D] each).
    std::pair<torch::Tensor, torch::Tensor> window(const torch::Tensor& kt, const torch::Tensor& vt) const;
};

// Relative mass of the linear branch in a fresh hybrid/chunked block: exp(log_scale) is set so that
// lambda phi_q^T z_L averages this fraction of the softmax branch's mass (1 for lse), i.e. a fresh block computes
// softmax over its own T_S with a small, trainable linear part (tests: HybridAttention.FreshBlockIsNearSoftmaxOnTS).
inline constexpr double kLinearInitMass = 0.1;

// The pluggable core for kinds hybrid, linear and chunked: owns the per-head feature maps phi_q and phi_k
// (parameters `phi_q.*`, `phi_k.*`, so `blocks.N.self_attn.attn.phi_q.w1` in a model) and, for kinds with both
// branches, the per-head linear weight `linear_log_scale` [H].
class HybridAttentionImpl : public AttentionCoreImpl {
public:
    // Feature-map weights drawn from a CPU generator seeded with `seed` (q and k maps from different streams);
    // linear_log_scale = log(kLinearInitMass) - log E[phi_q(x) . phi_k(x')] over x, x' ~ N(0, I) drawn from the same
    // stream (q and k after Wan's RMSNorm have unit RMS up to the norm's gain; calibrate_linear_scale refines it).
    HybridAttentionImpl(const PlanEntry& entry, int64_t num_heads, int64_t head_dim, uint64_t seed);
    torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const TokenGrid& grid) override;
    std::string describe() const override { return entry_.describe(); }
    // Fast path on a subset of queries q [B, n, H, D] against all keys (hybrid_attention_query_subset).
    torch::Tensor forward_query_subset(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const TokenGrid& grid);
    const PlanEntry& entry() const { return entry_; }
    // Causal chunked + Fast: evaluate with CausalChunkState instead of the parallel form (inference).
    void set_recurrent(bool on) { recurrent_ = on; }
    // Feature maps in the dtype the path computes them in (Reference: float32/float64, Fast: q's dtype).
    std::pair<torch::Tensor, torch::Tensor> features(const torch::Tensor& q, const torch::Tensor& k) const;
    // Sets linear_log_scale from data: per head, log(mass) - log(mean over queries and keys of phi_q(q_i) . phi_k(k_j))
    // on q, k [B, N, H, D] (a random subset of at most 4096 of each). No-op for kinds without it.
    void calibrate_linear_scale(const torch::Tensor& q, const torch::Tensor& k, double mass = kLinearInitMass);

    FeatureMap phi_q{nullptr}, phi_k{nullptr};
    torch::Tensor linear_log_scale;  // [H] float32; undefined for the linear kind

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
                                         int64_t q_begin = 0, int64_t q_count = -1, const torch::Tensor& log_scale = {});

namespace detail {
// Softmax branch over keys k, v [B, H, Nk, D] for queries q [B, H, Nq, D] (inputs' dtype):
// o = softmax(q k^T / sqrt(D)) v in float32 [B, H, Nq, D]; for Max also log_a = lse - rowmax [B, H, Nq, 1], both
// from one float32 score pass in query tiles (so log_a >= 0 exactly; backward d log_a / d s_ij = p_ij - [j = argmax]),
// undefined for Lse (a = 1). The extra score pass is counted by the cost model (AttentionFlops::stabilizer).
struct SoftmaxBranch {
    torch::Tensor o, log_a;
};
SoftmaxBranch softmax_branch(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             Stabilizer stabilizer, int64_t tile = 1024);
// Joint normalisation: (a*o + w*num_l) / (a + w*den_l) with a = exp(log_a) (1 if undefined) and w the linear weight
// (linear_weight; 1 if undefined). Shapes [B,H,N,D] / [B,H,N,1]; w [1,H,1,1].
torch::Tensor combine(const SoftmaxBranch& s, const torch::Tensor& num_l, const torch::Tensor& den_l,
                      const torch::Tensor& w = {});
// lambda = exp(log_scale) / max(1, n_linear) as [1, H, 1, 1] float32 (undefined if log_scale is).
torch::Tensor linear_weight(const torch::Tensor& log_scale, int64_t n_linear);
}  // namespace detail

}  // namespace surgeon
