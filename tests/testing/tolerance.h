// Tolerances used by the tests, with where each number comes from.
#pragma once
#include <cstdint>

namespace surgeon::testing {

// shared/golden/README.md: a faithful float32 port matches every golden tensor to ||out-ref||/||ref|| <= 1e-4.
constexpr double kGoldenRelTol = 1e-4;
// Fast vs reference twins in float32 (same function, different summation order): rounding-level agreement.
constexpr double kTwinRelTolF32 = 1e-5;
// bf16 GEMMs/attention against the fp32 reference on the tiny golden model: bf16 has 8 mantissa bits
// (unit roundoff 2^-9 ~ 2e-3); errors of a few roundoffs accumulate over 2 blocks. Measured ~4e-3;
// threshold 3e-2 leaves room across CPUs while still catching a wrong cast (which gives > 1e-1).
constexpr double kBf16RelTol = 3e-2;
// bf16-lean (bf16 residual stream and modulation too): a few more roundings per block on the same tiny model.
// Measured 5.6e-3 (Wan's bf16 recipe: 4.3e-3); threshold as loose as kBf16RelTol relative to that.
constexpr double kBf16LeanRelTol = 5e-2;

// Float32 unit roundoff u = 2^-24.
constexpr double kF32Unit = 5.9604644775390625e-08;
// Two float32 evaluations of one attention output y_i = sum_j w_j v_j / sum_j w_j with positive weights w_j that
// round in different orders (e.g. the recurrent and the parallel form of causal chunks). Each is within gamma_m =
// m u / (1 - m u) of the exact value relative to y_abs_i = sum_j w_j |v_j| / sum_j w_j, where m is the longest
// chain of roundings (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., 3.1 and 4.2): the score
// and feature dot products (`dot_terms`), the sum over the keys (`keys`), one rescaling of the running state per
// chunk (`chunks`) and the elementwise exp, products and division (4). So the two differ by at most
// 2 gamma_m ||y_abs|| / ||y|| relative to ||y||; `kappa` = ||y_abs|| / ||y|| is measured by the test on its data
// (attention of |v| with the same weights). A worst-case bound: it holds for any summation order, thread count
// or SIMD width, which a fixed 1e-5 did not (1.20e-05 seen once in CI for the causal-chunk recurrence).
inline double attention_order_rel_tol(int64_t dot_terms, int64_t keys, int64_t chunks, double kappa) {
    const double m = static_cast<double>(dot_terms + keys + chunks + 4);
    return 2.0 * (m * kF32Unit / (1.0 - m * kF32Unit)) * kappa;
}

}  // namespace surgeon::testing
