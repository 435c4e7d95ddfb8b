// Bounds on untrusted torch.save (.pth) files, checked before libtorch's reader touches the data:
// zip records (no record larger than the archive: torch.save stores records uncompressed, so a larger one is a
// compressed record and possibly a zip bomb), the pickle's nesting depth (the unpickler and IValue destructors
// recurse), and every tensor's view of its storage (offset, strides and sizes inside the storage's bytes).
#pragma once
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace surgeon::vae {

constexpr int64_t kMaxPickleDepth = 1000;

// Throws unless the pickle program `data` is well formed for the opcodes it uses (no stack underflow, arguments
// inside the data, a STOP), builds no cycle, and nests at most `max_depth` containers.
void check_pickle_structure(const uint8_t* data, size_t size, const std::string& where,
                            int64_t max_depth = kMaxPickleDepth);
// Reads the zip central directory of `path` (before libtorch opens it) and throws unless every record's declared
// size (compressed and uncompressed) fits in the file: torch.save stores records uncompressed, so a record that
// would inflate beyond the archive is a compressed record and possibly a zip bomb.
void check_zip_records(const std::string& path);
// Throws unless every element `t` can address lies inside its storage: offset >= 0, strides >= 0 and
// (offset + sum((size_i - 1) * stride_i) + 1) * itemsize <= storage bytes, all in int64 without overflow.
void check_tensor_in_storage(const torch::Tensor& t, const std::string& where);

}  // namespace surgeon::vae
