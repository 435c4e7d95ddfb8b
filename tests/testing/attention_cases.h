// Random attention problems shared by the hybrid-attention tests: the fast paths against their reference twin on
// the CPU (tests/attention) and on CUDA (tests/gpu).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "attention/attention_plan.h"

namespace surgeon::testing {

// B videos of an F x Hp x Wp token grid, H heads of dim D.
struct AttentionShape {
    int64_t B, F, Hp, Wp, H, D;
    TokenGrid grid() const { return {F, Hp, Wp}; }
    int64_t N() const { return F * Hp * Wp; }
};

struct AttentionInputs {
    torch::Tensor q, k, v, pq, pk;  // [B, N, H, D], phi [B, N, H, 2D]
    torch::Tensor ls;               // [H] per-head linear log-scale (drawn by the tests that use one)
};

// q, k, v ~ N(0, 1), then phi_q, phi_k = softplus(N(0, 1)), float32 on the CPU, drawn in that order after
// torch::manual_seed(seed) (a test may draw more from the same stream).
inline AttentionInputs random_attention_inputs(const AttentionShape& s, uint64_t seed) {
    torch::manual_seed(seed);
    AttentionInputs in;
    in.q = torch::randn({s.B, s.N(), s.H, s.D});
    in.k = torch::randn({s.B, s.N(), s.H, s.D});
    in.v = torch::randn({s.B, s.N(), s.H, s.D});
    in.pq = torch::softplus(torch::randn({s.B, s.N(), s.H, 2 * s.D}));
    in.pk = torch::softplus(torch::randn({s.B, s.N(), s.H, 2 * s.D}));
    return in;
}

inline PlanEntry linear_entry() {
    PlanEntry e;
    e.kind = AttentionKind::Linear;
    return e;
}
inline PlanEntry hybrid_entry(int64_t R, Stabilizer st) {
    PlanEntry e;
    e.kind = AttentionKind::Hybrid, e.rate = R, e.stabilizer = st;
    return e;
}
inline PlanEntry chunked_entry(int64_t Tc, int64_t To, bool causal, Stabilizer st) {
    PlanEntry e;
    e.kind = AttentionKind::Chunked, e.chunk = Tc, e.overlap = To, e.causal = causal, e.stabilizer = st;
    return e;
}

// Every kind valid on `s`: linear, and per stabiliser hybrid at each of `rates` and chunked with 1, 2 or 3 frames
// per chunk, each of `overlaps`, causal or not, where the chunk fits the video and the overlap is shorter than it
// (unless one chunk is the whole video).
inline std::vector<PlanEntry> plan_entries_for(const AttentionShape& s, const std::vector<int64_t>& rates,
                                               const std::vector<int64_t>& overlaps) {
    std::vector<PlanEntry> out = {linear_entry()};
    for (auto st : {Stabilizer::Max, Stabilizer::Lse}) {
        for (int64_t R : rates) out.push_back(hybrid_entry(R, st));
        for (int64_t Tc : {1, 2, 3})
            for (int64_t To : overlaps)
                for (bool causal : {false, true})
                    if (Tc <= s.F && (To < s.F || Tc == s.F)) out.push_back(chunked_entry(Tc, To, causal, st));
    }
    return out;
}

}  // namespace surgeon::testing
