// Safetensors header and index validation (see safetensors_header.h). Every check runs before any tensor is made.
#include "core/safetensors_header.h"

#include <algorithm>

#include "core/error.h"
#include "core/json_limits.h"

namespace surgeon {
using json = nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // same limit as the reference Rust crate

struct DtypeSize {
    const char* name;
    uint64_t bytes;
};
const DtypeSize kDtypeSizes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8},
                                 {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},  {"BOOL", 1}};

HeaderEntry parse_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& path) {
    SURGEON_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
                  "{}: corrupt safetensors header: entry '{}' needs dtype, shape and data_offsets", path, name);
    SURGEON_CHECK(v["dtype"].is_string(), "{}: tensor '{}': dtype is not a string", path, name);
    HeaderEntry info;
    info.name = name;
    info.dtype = v["dtype"].get<std::string>();
    const uint64_t elem = safetensors_dtype_size(info.dtype);
    SURGEON_CHECK(v["shape"].is_array(), "{}: tensor '{}': shape is not an array", path, name);
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
        SURGEON_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                      "{}: tensor '{}': shape entries must be non-negative integers", path, name);
        const uint64_t dim = d.get<uint64_t>();
        SURGEON_CHECK(dim < (1ull << 40), "{}: tensor '{}': absurd dimension {}", path, name, dim);
        info.shape.push_back(static_cast<int64_t>(dim));
        SURGEON_CHECK(dim == 0 || numel <= (1ull << 50) / dim, "{}: tensor '{}': absurd element count", path, name);
        numel *= dim;
    }
    const auto& off = v["data_offsets"];
    SURGEON_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                  "{}: tensor '{}': data_offsets must be two non-negative integers", path, name);
    info.begin = off[0].get<uint64_t>();
    info.end = off[1].get<uint64_t>();
    SURGEON_CHECK(info.begin <= info.end && info.end <= data_size,
                  "{}: tensor '{}': data_offsets [{}, {}] outside the data section of {} bytes (truncated file?)", path,
                  name, info.begin, info.end, data_size);
    const uint64_t expect = numel * elem;
    SURGEON_CHECK(info.end - info.begin == expect, "{}: tensor '{}': {} bytes for dtype {} and shape [{}], header gives {}",
                  path, name, expect, info.dtype, fmt::join(info.shape, ","), info.end - info.begin);
    return info;
}
}  // namespace

uint64_t safetensors_dtype_size(const std::string& dtype) {
    for (const auto& d : kDtypeSizes)
        if (dtype == d.name) return d.bytes;
    fail("unsupported safetensors dtype '{}'", dtype);
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t file_size, const std::string& path) {
    SURGEON_CHECK(file_size >= 8, "{}: truncated safetensors file ({} bytes, need at least 8)", path, file_size);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
    SURGEON_CHECK(header_size <= kMaxHeaderBytes, "{}: corrupt safetensors header: header size {} exceeds {} bytes",
                  path, header_size, kMaxHeaderBytes);
    SURGEON_CHECK(header_size <= file_size - 8, "{}: truncated safetensors file: header says {} bytes but only {} follow",
                  path, header_size, file_size - 8);
    SafetensorsHeader out;
    out.data_offset = 8 + header_size;
    const uint64_t data_size = file_size - out.data_offset;
    const char* text = reinterpret_cast<const char*>(bytes + 8);
    const json header = parse_json_bounded(text, text + header_size, path + ": corrupt safetensors header",
                                           kMaxHeaderBytes);
    SURGEON_CHECK(header.is_object(), "{}: corrupt safetensors header: not a JSON object", path);
    for (auto it = header.begin(); it != header.end(); ++it) {
        const json& v = it.value();
        if (it.key() == "__metadata__") {
            SURGEON_CHECK(v.is_object(), "{}: __metadata__ must be an object of strings", path);
            for (auto m = v.begin(); m != v.end(); ++m) {
                SURGEON_CHECK(m.value().is_string(), "{}: __metadata__ value '{}' is not a string", path, m.key());
                out.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        out.tensors.push_back(parse_entry(it.key(), v, data_size, path));
    }
    // No two tensors may share bytes.
    std::vector<const HeaderEntry*> sorted;
    for (const auto& i : out.tensors) sorted.push_back(&i);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < sorted.size(); ++i)
        SURGEON_CHECK(sorted[i]->begin >= sorted[i - 1]->end || sorted[i - 1]->begin == sorted[i - 1]->end,
                      "{}: corrupt safetensors header: tensors '{}' and '{}' overlap", path, sorted[i - 1]->name,
                      sorted[i]->name);
    return out;
}

std::map<std::string, std::vector<std::string>> parse_checkpoint_index(const json& index, const std::string& index_path) {
    SURGEON_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
                  "{}: checkpoint index has no 'weight_map' object", index_path);
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        SURGEON_CHECK(it.value().is_string(), "{}: weight_map['{}'] is not a file name", index_path, it.key());
        auto file = it.value().get<std::string>();
        SURGEON_CHECK(!file.empty() && file.find('/') == std::string::npos && file.find("..") == std::string::npos &&
                          file.find('\0') == std::string::npos,
                      "{}: shard name '{}' must be a plain file name", index_path, file);
        by_file[file].push_back(it.key());
    }
    SURGEON_CHECK(!by_file.empty(), "{}: weight_map is empty", index_path);
    return by_file;
}

}  // namespace surgeon
