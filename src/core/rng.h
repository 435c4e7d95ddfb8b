// SplitMix64, the one PRNG/hash of Surgeon's own streams (world sampling, training data, per-block phi seeds).
// Only integer arithmetic and one exact int->double conversion, so a seed gives the same stream on every compiler
// and CPU (std:: distributions and torch RNGs do not promise that).
#pragma once
#include <cstdint>

namespace surgeon {

constexpr uint64_t kSplitMix64Gamma = 0x9E3779B97F4A7C15ULL;

// The SplitMix64 output function of a state.
constexpr uint64_t splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// One SplitMix64 step from state x: a 64-bit hash of x (SplitMix64(x).next() == splitmix64(x)).
constexpr uint64_t splitmix64(uint64_t x) { return splitmix64_mix(x + kSplitMix64Gamma); }

class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next() { return splitmix64_mix(state_ += kSplitMix64Gamma); }
    // Uniform in [0, 1) with 53 random bits (exact in IEEE double).
    double uniform() { return to_unit(next()); }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    // Uniform integer in [0, n); the modulo bias (< n / 2^64) is irrelevant here.
    int index(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
    bool coin() { return (next() >> 63) != 0; }
    // The top 53 bits of x as a double in [0, 1).
    static double to_unit(uint64_t x) { return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0); }

private:
    uint64_t state_;
};

}  // namespace surgeon
