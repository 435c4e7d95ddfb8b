#include "core/json_limits.h"

#include <algorithm>

#include "core/error.h"

namespace surgeon {

nlohmann::json parse_json_bounded(const char* begin, const char* end, const std::string& source, uint64_t max_bytes) {
    const auto size = static_cast<uint64_t>(end - begin);
    SURGEON_CHECK(size <= max_bytes, "{}: invalid JSON (file of {} bytes exceeds the limit of {} bytes)", source, size,
                  max_bytes);
    // The callback sees every container as it opens, so a deep nesting fails before it is built.
    auto limit = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
        if ((event == nlohmann::json::parse_event_t::object_start ||
             event == nlohmann::json::parse_event_t::array_start) &&
            depth >= kMaxJsonDepth)
            fail("{}: invalid JSON (nested deeper than {} levels)", source, kMaxJsonDepth);
        return true;
    };
    try {
        return nlohmann::json::parse(begin, end, limit);
    } catch (const nlohmann::json::exception& e) {
        std::string msg = e.what();
        std::replace(msg.begin(), msg.end(), '\n', ' ');
        fail("{}: invalid JSON ({})", source, msg);
    }
}

}  // namespace surgeon
