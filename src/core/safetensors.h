// Safetensors reader (memory-mapped, validated) and atomic writer; sharded checkpoints via
// *.safetensors.index.json. Format: u64 little-endian header size, JSON header, raw data.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace surgeon {

using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

struct TensorInfo {
    std::string name;
    std::string dtype;            // "F32", "BF16", ...
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte offsets in the data section
};

// A memory-mapped safetensors file. Tensors returned by get() alias the mapping and keep it alive.
class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const std::vector<TensorInfo>& tensors() const { return infos_; }
    const Metadata& metadata() const { return metadata_; }
    bool contains(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const;
    // Zero-copy view of the tensor (CPU, read-only memory: clone before writing to it).
    torch::Tensor get(const std::string& name) const;
    TensorMap all() const;  // zero-copy views of every tensor

private:
    struct Mapping;
    std::string path_;
    std::shared_ptr<Mapping> map_;
    std::vector<TensorInfo> infos_;
    std::map<std::string, size_t> index_;
    Metadata metadata_;
    uint64_t data_offset_ = 0;
};

// dtype <-> safetensors name. Supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL.
torch::ScalarType dtype_from_safetensors(const std::string& s);
std::string dtype_to_safetensors(torch::ScalarType t);

// Reads every tensor of one file or of a sharded checkpoint given by its index.json; tensors are copies
// (owning, contiguous). With `metadata`, also returns the header metadata (of the first shard).
TensorMap load_safetensors(const std::string& path, Metadata* metadata = nullptr);
TensorMap load_sharded_safetensors(const std::string& index_json_path, Metadata* metadata = nullptr);

// Writes atomically (temp file in the same folder, then rename). Tensors are made contiguous CPU.
void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});
// Writes shards of at most `max_shard_bytes` plus `<stem>.safetensors.index.json`; returns the files written.
std::vector<std::string> save_sharded_safetensors(const std::string& dir, const std::string& stem,
                                                  const TensorMap& tensors, uint64_t max_shard_bytes,
                                                  const Metadata& metadata = {});

}  // namespace surgeon
