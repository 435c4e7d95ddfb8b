#include "surgery/stage2_latency.h"

#include "core/error.h"

namespace surgeon {

std::vector<double> price_by_latency(BlockErrorTable& table, const WanConfig& cfg, const TokenGrid& grid,
                                     const LatencyOptions& options) {
    SURGEON_CHECK(!table.options.empty(), "latency: the table has no options");
    std::vector<double> ms;
    for (size_t o = 0; o < table.options.size(); ++o) {
        try {
            ms.push_back(attention_latency_ms(table.options[o], cfg.num_heads, cfg.head_dim(), grid, options));
        } catch (const Error& e) {
            fail("latency of option '{}': {}", table.names[o], e.what());
        }
    }
    table.costs = std::vector<std::vector<double>>(static_cast<size_t>(table.num_blocks()), ms);
    return ms;
}

}  // namespace surgeon
