// SplitMix64: the world's own PRNG. Only integer arithmetic and one exact int->double conversion, so a seed
// gives the same stream on every compiler and CPU (std:: distributions and torch RNGs do not promise that).
#pragma once
#include <cstdint>

namespace surgeon::world {

class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // Uniform in [0, 1) with 53 random bits (exact in IEEE double).
    double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    // Uniform integer in [0, n); the modulo bias (< n / 2^64) is irrelevant here.
    int index(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
    bool coin() { return (next() >> 63) != 0; }

private:
    uint64_t state_;
};

}  // namespace surgeon::world
