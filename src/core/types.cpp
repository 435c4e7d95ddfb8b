// Parsing of the shared vocabulary types.
#include "core/types.h"

#include "core/error.h"

namespace surgeon {

AttentionImpl parse_attention_impl(const std::string& s) {
    return parse_name(kAttentionImplNames, s, "attention implementation");
}

void check_token_grid(const TokenGrid& g, const std::string& what) {
    SURGEON_CHECK(g.frames >= 1 && g.height >= 1 && g.width >= 1, "{}: token grid {}x{}x{} needs every side >= 1", what,
                  g.frames, g.height, g.width);
    SURGEON_CHECK(g.frames <= kMaxTokens && g.height <= kMaxTokens / g.frames &&
                      g.width <= kMaxTokens / (g.frames * g.height),
                  "{}: token grid {}x{}x{} has more than {} tokens", what, g.frames, g.height, g.width, kMaxTokens);
}

std::string to_string(AttentionImpl impl) { return name_of(kAttentionImplNames, impl); }

}  // namespace surgeon
