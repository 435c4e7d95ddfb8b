// Safetensors I/O. The reader validates everything in the header before any tensor is touched:
// size fields, JSON shape, dtype names, offsets inside the file, byte counts, and no overlaps.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // same limit as the reference Rust crate

struct DtypeName {
    const char* name;
    torch::ScalarType type;
};
const DtypeName kDtypes[] = {
    {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16}, {"F64", torch::kFloat64},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},     {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};
}  // namespace

torch::ScalarType dtype_from_safetensors(const std::string& s) {
    for (const auto& d : kDtypes)
        if (s == d.name) return d.type;
    fail("unsupported safetensors dtype '{}'", s);
}

std::string dtype_to_safetensors(torch::ScalarType t) {
    for (const auto& d : kDtypes)
        if (t == d.type) return d.name;
    fail("dtype {} cannot be stored in safetensors", c10::toString(t));
}

struct SafetensorsFile::Mapping {
    void* addr = nullptr;
    size_t size = 0;
    ~Mapping() {
        if (addr && size) munmap(addr, size);
    }
};

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), map_(std::make_shared<Mapping>()) {
    check_input_file(path, "safetensors file");  // stat before open: a FIFO must not block
    int fd = ::open(path.c_str(), O_RDONLY);
    SURGEON_CHECK(fd >= 0, "{}: cannot open safetensors file", path);
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("{}: not a regular file", path);
    }
    const uint64_t file_size = static_cast<uint64_t>(st.st_size);
    if (file_size < 8) {
        ::close(fd);
        fail("{}: truncated safetensors file ({} bytes, need at least 8)", path, file_size);
    }
    void* addr = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    SURGEON_CHECK(addr != MAP_FAILED, "{}: mmap failed", path);
    map_->addr = addr;
    map_->size = file_size;
    const auto* bytes = static_cast<const uint8_t*>(addr);

    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
    SURGEON_CHECK(header_size <= kMaxHeaderBytes, "{}: corrupt safetensors header: header size {} exceeds {} bytes",
                  path, header_size, kMaxHeaderBytes);
    SURGEON_CHECK(header_size <= file_size - 8,
                  "{}: truncated safetensors file: header says {} bytes but only {} follow", path, header_size,
                  file_size - 8);
    data_offset_ = 8 + header_size;
    const uint64_t data_size = file_size - data_offset_;

    json header;
    try {
        header = json::parse(bytes + 8, bytes + 8 + header_size);
    } catch (const std::exception& e) {
        fail("{}: corrupt safetensors header: invalid JSON ({})", path, e.what());
    }
    SURGEON_CHECK(header.is_object(), "{}: corrupt safetensors header: not a JSON object", path);

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const json& v = it.value();
        if (name == "__metadata__") {
            SURGEON_CHECK(v.is_object(), "{}: __metadata__ must be an object of strings", path);
            for (auto m = v.begin(); m != v.end(); ++m) {
                SURGEON_CHECK(m.value().is_string(), "{}: __metadata__ value '{}' is not a string", path, m.key());
                metadata_[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        SURGEON_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
                      "{}: corrupt safetensors header: entry '{}' needs dtype, shape and data_offsets", path, name);
        SURGEON_CHECK(v["dtype"].is_string(), "{}: tensor '{}': dtype is not a string", path, name);
        TensorInfo info;
        info.name = name;
        info.dtype = v["dtype"].get<std::string>();
        auto st_type = dtype_from_safetensors(info.dtype);
        SURGEON_CHECK(v["shape"].is_array(), "{}: tensor '{}': shape is not an array", path, name);
        uint64_t numel = 1;
        for (const auto& d : v["shape"]) {
            SURGEON_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                          "{}: tensor '{}': shape entries must be non-negative integers", path, name);
            uint64_t dim = d.get<uint64_t>();
            SURGEON_CHECK(dim < (1ull << 40), "{}: tensor '{}': absurd dimension {}", path, name, dim);
            info.shape.push_back(static_cast<int64_t>(dim));
            SURGEON_CHECK(dim == 0 || numel <= (1ull << 50) / dim, "{}: tensor '{}': absurd element count", path,
                          name);
            numel *= dim;
        }
        const auto& off = v["data_offsets"];
        SURGEON_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                      "{}: tensor '{}': data_offsets must be two non-negative integers", path, name);
        info.begin = off[0].get<uint64_t>();
        info.end = off[1].get<uint64_t>();
        SURGEON_CHECK(info.begin <= info.end && info.end <= data_size,
                      "{}: tensor '{}': data_offsets [{}, {}] outside the data section of {} bytes (truncated file?)",
                      path, name, info.begin, info.end, data_size);
        const uint64_t expect = numel * c10::elementSize(st_type);
        SURGEON_CHECK(info.end - info.begin == expect,
                      "{}: tensor '{}': {} bytes for dtype {} and shape [{}], header gives {}", path, name, expect,
                      info.dtype, fmt::join(info.shape, ","), info.end - info.begin);
        index_[name] = infos_.size();
        infos_.push_back(std::move(info));
    }
    // No two tensors may share bytes.
    std::vector<const TensorInfo*> sorted;
    for (const auto& i : infos_) sorted.push_back(&i);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < sorted.size(); ++i)
        SURGEON_CHECK(sorted[i]->begin >= sorted[i - 1]->end || sorted[i - 1]->begin == sorted[i - 1]->end,
                      "{}: corrupt safetensors header: tensors '{}' and '{}' overlap", path, sorted[i - 1]->name,
                      sorted[i]->name);
}

SafetensorsFile::~SafetensorsFile() = default;

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) > 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
    auto it = index_.find(name);
    SURGEON_CHECK(it != index_.end(), "{}: no tensor named '{}'", path_, name);
    return infos_[it->second];
}

torch::Tensor SafetensorsFile::get(const std::string& name) const {
    const TensorInfo& i = info(name);
    auto type = dtype_from_safetensors(i.dtype);
    auto* data = static_cast<uint8_t*>(map_->addr) + data_offset_ + i.begin;
    auto keep = map_;
    // from_blob never writes; the mapping is PROT_READ so any write would fault, hence callers clone.
    return torch::from_blob(
        data, i.shape, [keep](void*) {}, torch::TensorOptions().dtype(type));
}

TensorMap SafetensorsFile::all() const {
    TensorMap out;
    for (const auto& i : infos_) out[i.name] = get(i.name);
    return out;
}

TensorMap load_safetensors(const std::string& path, Metadata* metadata) {
    SafetensorsFile f(path);
    TensorMap out;
    for (const auto& i : f.tensors()) out[i.name] = f.get(i.name).clone();
    if (metadata) *metadata = f.metadata();
    return out;
}

TensorMap load_sharded_safetensors(const std::string& index_path, Metadata* metadata) {
    json index;
    try {
        check_input_file(index_path, "checkpoint index");
        std::ifstream in(index_path);
        SURGEON_CHECK(in.good(), "{}: cannot open checkpoint index", index_path);
        index = json::parse(in);
    } catch (const json::exception& e) {
        fail("{}: invalid checkpoint index JSON ({})", index_path, e.what());
    }
    SURGEON_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
                  "{}: checkpoint index has no 'weight_map' object", index_path);
    const fs::path dir = fs::path(index_path).parent_path();
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        SURGEON_CHECK(it.value().is_string(), "{}: weight_map['{}'] is not a file name", index_path, it.key());
        auto file = it.value().get<std::string>();
        SURGEON_CHECK(file.find('/') == std::string::npos && file.find("..") == std::string::npos,
                      "{}: shard name '{}' must be a plain file name", index_path, file);
        by_file[file].push_back(it.key());
    }
    SURGEON_CHECK(!by_file.empty(), "{}: weight_map is empty", index_path);
    TensorMap out;
    bool first = true;
    for (const auto& [file, names] : by_file) {
        SafetensorsFile f((dir / file).string());
        for (const auto& n : names)
            SURGEON_CHECK(f.contains(n), "{}: tensor '{}' listed in the index is missing from shard {}", index_path,
                          n, file);
        SURGEON_CHECK(f.tensors().size() == names.size(),
                      "{}: shard {} holds {} tensors but the index lists {} for it", index_path, file,
                      f.tensors().size(), names.size());
        for (const auto& n : names) out[n] = f.get(n).clone();
        if (first && metadata) *metadata = f.metadata();
        first = false;
    }
    return out;
}

namespace {
std::string build_header(const TensorMap& tensors, const Metadata& metadata, std::vector<torch::Tensor>* data) {
    json header = json::object();
    if (!metadata.empty()) {
        json m = json::object();
        for (const auto& [k, v] : metadata) m[k] = v;
        header["__metadata__"] = m;
    }
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        SURGEON_CHECK(t.defined(), "cannot save undefined tensor '{}'", name);
        auto c = t.detach().to(torch::kCPU).contiguous();
        const uint64_t bytes = c.numel() * c.element_size();
        header[name] = {{"dtype", dtype_to_safetensors(c.scalar_type())},
                        {"shape", c.sizes().vec()},
                        {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
        data->push_back(c);
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');  // align the data section to 8 bytes
    return h;
}
}  // namespace

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
    std::vector<torch::Tensor> data;
    const std::string header = build_header(tensors, metadata, &data);
    atomic_write(path, [&](std::ostream& out) {
        uint64_t n = header.size();
        char len[8];
        for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
        out.write(len, 8);
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
        for (const auto& t : data)
            out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    });
}

std::vector<std::string> save_sharded_safetensors(const std::string& dir, const std::string& stem,
                                                  const TensorMap& tensors, uint64_t max_shard_bytes,
                                                  const Metadata& metadata) {
    std::vector<TensorMap> shards(1);
    uint64_t cur = 0, total = 0;
    for (const auto& [name, t] : tensors) {
        const uint64_t bytes = t.numel() * t.element_size();
        SURGEON_CHECK(bytes <= max_shard_bytes, "tensor '{}' ({} bytes) exceeds the shard limit of {} bytes", name,
                      bytes, max_shard_bytes);
        if (cur + bytes > max_shard_bytes && !shards.back().empty()) {
            shards.emplace_back();
            cur = 0;
        }
        shards.back()[name] = t;
        cur += bytes;
        total += bytes;
    }
    std::vector<std::string> files;
    json weight_map = json::object();
    const size_t n = shards.size();
    for (size_t i = 0; i < n; ++i) {
        std::string file = fmt::format("{}-{:05d}-of-{:05d}.safetensors", stem, i + 1, n);
        save_safetensors((fs::path(dir) / file).string(), shards[i], metadata);
        for (const auto& [name, t] : shards[i]) weight_map[name] = file;
        files.push_back(file);
    }
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    const std::string index_file = stem + ".safetensors.index.json";
    atomic_write((fs::path(dir) / index_file).string(), [&](std::ostream& out) { out << index.dump(1) << "\n"; });
    files.push_back(index_file);
    return files;
}

}  // namespace surgeon
