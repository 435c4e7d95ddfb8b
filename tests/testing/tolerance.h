// Tolerances used by the tests, with where each number comes from.
#pragma once

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

}  // namespace surgeon::testing
