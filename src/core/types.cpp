// Parsing of the shared vocabulary types.
#include "core/types.h"

#include "core/error.h"

namespace surgeon {

AttentionImpl parse_attention_impl(const std::string& s) {
    if (s == "reference") return AttentionImpl::Reference;
    if (s == "fast") return AttentionImpl::Fast;
    fail("unknown attention implementation '{}' (expected reference|fast)", s);
}

std::string to_string(AttentionImpl impl) { return impl == AttentionImpl::Reference ? "reference" : "fast"; }

}  // namespace surgeon
