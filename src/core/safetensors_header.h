// The torch-free half of the safetensors reader: the header and the sharded index are parsed and validated from
// bytes, so the checks can be fuzzed without libtorch (fuzz/). safetensors.cpp maps files and builds tensors.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace surgeon {

struct HeaderEntry {
    std::string name;
    std::string dtype;  // "F32", "BF16", ... (one of the supported names)
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte offsets in the data section
};

struct SafetensorsHeader {
    std::vector<HeaderEntry> tensors;  // in header order
    std::map<std::string, std::string> metadata;
    uint64_t data_offset = 0;  // 8 + header size
};

// Bytes per element of a safetensors dtype name; throws for an unsupported one.
uint64_t safetensors_dtype_size(const std::string& dtype);
// Parses and validates the first `file_size` bytes of a safetensors file (`path` names it in errors): size
// fields, JSON shape (nesting at most kMaxJsonDepth), dtype names, offsets inside the data section, byte counts,
// no overlaps.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t file_size, const std::string& path);
// The weight_map of a *.safetensors.index.json: shard file -> tensor names. Shards must be plain file names.
std::map<std::string, std::vector<std::string>> parse_checkpoint_index(const nlohmann::json& index,
                                                                       const std::string& index_path);

}  // namespace surgeon
