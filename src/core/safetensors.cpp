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
#include "core/json_limits.h"
#include "core/safetensors_header.h"

namespace surgeon {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
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
    SafetensorsHeader header = parse_safetensors_header(static_cast<const uint8_t*>(addr), file_size, path);
    data_offset_ = header.data_offset;
    metadata_ = std::move(header.metadata);
    for (auto& e : header.tensors) {
        dtype_from_safetensors(e.dtype);  // every name of safetensors_header.cpp is a torch dtype
        index_[e.name] = infos_.size();
        infos_.push_back(TensorInfo{std::move(e.name), std::move(e.dtype), std::move(e.shape), e.begin, e.end});
    }
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
    check_input_file(index_path, "checkpoint index");
    const json index = parse_json_bounded(read_text_file(index_path), index_path);
    const fs::path dir = fs::path(index_path).parent_path();
    const auto by_file = parse_checkpoint_index(index, index_path);
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
