// The .pth reader on hostile files (issue 20): tensors whose offset/stride point outside their storage, pickles
// nested deeper than the bound (directly, through memo mutation, or cyclic), zip records that would inflate beyond
// the archive. Hand-made torch.save archives (stored zip + protocol-2 pickle) exercise read_torch_checkpoint end to
// end; the golden Wan2.1_VAE.pth must still load.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "testing/testing.h"
#include "vae/pth_checks.h"
#include "vae/vae_io.h"

using namespace surgeon;
using namespace surgeon::testing;
using namespace std::string_literals;

namespace {

uint32_t crc32(const std::string& s) {
    uint32_t c = 0xffffffffu;
    for (unsigned char b : s) {
        c ^= b;
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}
void put(std::string& o, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) o.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A zip of stored records; `declared` overrides the uncompressed size written in the central directory.
std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& records, int64_t declared = -1) {
    std::string out, cd;
    for (const auto& [name, data] : records) {
        const uint64_t off = out.size();
        put(out, 0x04034b50, 4), put(out, 20, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 4);
        put(out, crc32(data), 4), put(out, data.size(), 4), put(out, data.size(), 4);
        put(out, name.size(), 2), put(out, 0, 2);
        out += name + data;
        put(cd, 0x02014b50, 4), put(cd, 20, 2), put(cd, 20, 2), put(cd, 0, 2), put(cd, 0, 2), put(cd, 0, 4);
        put(cd, crc32(data), 4), put(cd, data.size(), 4);
        put(cd, declared >= 0 ? static_cast<uint64_t>(declared) : data.size(), 4);
        put(cd, name.size(), 2), put(cd, 0, 2), put(cd, 0, 2), put(cd, 0, 2), put(cd, 0, 2), put(cd, 0, 4);
        put(cd, off, 4);
        cd += name;
    }
    const uint64_t cd_off = out.size();
    out += cd;
    put(out, 0x06054b50, 4), put(out, 0, 2), put(out, 0, 2), put(out, records.size(), 2), put(out, records.size(), 2);
    put(out, cd.size(), 4), put(out, cd_off, 4), put(out, 0, 2);
    return out;
}

std::string unicode(const std::string& s) {
    std::string o = "X";
    put(o, s.size(), 4);
    return o + s;
}

// {"w": tensor of 4 floats viewed at `offset` with size `size` and stride `stride`} as torch.save writes it.
std::string tensor_pickle(int64_t offset, int64_t size, int64_t stride) {
    std::string p = "\x80\x02}";
    p += unicode("w");
    p += "ctorch._utils\n_rebuild_tensor_v2\n(";
    p += "(" + unicode("storage") + "ctorch\nFloatStorage\n" + unicode("0") + unicode("cpu") + "K\x04tQ";
    auto bin_int = [&](int64_t v) {
        std::string o = "J";
        put(o, static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
        return o;
    };
    p += bin_int(offset) + bin_int(size) + "\x85" + bin_int(stride) + "\x85" + "\x89";
    p += "ccollections\nOrderedDict\n)R";
    p += "tRs.";
    return p;
}

std::string write_pth(const std::string& name, const std::string& pickle, const std::string& storage) {
    const auto path = temp_dir("pth") + "/" + name;
    const std::string z = stored_zip({{"archive/data.pkl", pickle}, {"archive/byteorder", "little"},
                                      {"archive/data/0", storage}, {"archive/version", "3\n"}});
    std::ofstream(path, std::ios::binary) << z;
    return path;
}

std::string floats(int n) {
    std::string s(static_cast<size_t>(n) * 4, '\0');
    for (int i = 0; i < n; ++i) {
        const float f = static_cast<float>(i + 1);
        std::memcpy(&s[static_cast<size_t>(i) * 4], &f, 4);
    }
    return s;
}

std::string scan_error(const std::string& pickle) {
    return error_of([&] {
        vae::check_pickle_structure(reinterpret_cast<const uint8_t*>(pickle.data()), pickle.size(), "p");
    });
}

}  // namespace

TEST(PthChecks, HandMadeCheckpointLoadsWhenInBounds) {
    const auto path = write_pth("ok.pth", tensor_pickle(1, 3, 1), floats(4));
    const auto t = vae::read_torch_checkpoint(path);
    ASSERT_EQ(t.count("w"), 1u);
    EXPECT_TRUE(torch::equal(t.at("w"), torch::tensor({2.0f, 3.0f, 4.0f})));
}

TEST(PthChecks, OffsetOrStrideOutsideTheStorageIsRefused) {
    for (auto [offset, size, stride] : {std::tuple<int64_t, int64_t, int64_t>{1000, 4, 1}, {0, 4, 1000}, {2, 3, 1},
                                        {0, 5, 1}, {-1, 2, 1}, {0, 5, -1}, {0, 2, 0x7fffffff}}) {
        const auto path = write_pth("bad.pth", tensor_pickle(offset, size, stride), floats(4));
        std::string shape;
        const auto err = error_of([&] {
            const auto w = vae::read_torch_checkpoint(path).at("w");
            shape = fmt::format("loaded with sizes {} strides {} offset {}", w.sizes(), w.strides(), w.storage_offset());
        });
        EXPECT_NE(err.find("bad.pth"), std::string::npos) << offset << " " << size << " " << stride << ": " << shape;
    }
}

TEST(PthChecks, TensorViewBoundsInInt64) {
    auto t = torch::zeros({4});
    auto* impl = t.unsafeGetTensorImpl();
    using V = std::vector<int64_t>;
    const auto set = [&](const V& sizes, const V& strides) {
        impl->set_sizes_and_strides(c10::IntArrayRef(sizes), c10::IntArrayRef(strides));
    };
    set({2, 2}, {int64_t{1} << 62, int64_t{1} << 62});
    EXPECT_NE(error_of([&] { vae::check_tensor_in_storage(t, "t"); }).find("overflow"), std::string::npos);
    set({0, 5}, {100, 100});  // no element is read
    EXPECT_EQ(error_of([&] { vae::check_tensor_in_storage(t, "t"); }), "");
    // A negative stride cannot reach a tensor: c10's set_sizes_and_strides turns it into the contiguous one, which
    // is then bounds-checked (the end-to-end case {0, 5, -1} above).
    set({2, 2}, {2, -1});
    EXPECT_EQ(t.stride(1), 1);
    set({2, 2}, {2, 1});
    EXPECT_EQ(error_of([&] { vae::check_tensor_in_storage(t, "t"); }), "");
    impl->set_storage_offset(1);
    EXPECT_NE(error_of([&] { vae::check_tensor_in_storage(t, "t"); }).find("past its storage"), std::string::npos);
}

TEST(PthChecks, DeepPicklesAreRefusedWithoutRecursion) {
    // 300k nested 1-tuples: ()  then TUPLE1 300000 times.
    std::string deep = "\x80\x02)" + std::string(300000, '\x85') + ".";
    EXPECT_NE(scan_error(deep).find("nests 300001"), std::string::npos) << scan_error(deep);
    // Within the bound: fine.
    EXPECT_EQ(scan_error("\x80\x02)" + std::string(999, '\x85') + "."), "");
    // A chain built by mutation through the memo: lists L0..Ln memoised, then L_i.append(L_{i+1}).
    std::string chain = "\x80\x02";
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
        chain += "]r";
        put(chain, static_cast<uint64_t>(i), 4);
        chain += "0";
    }
    for (int i = 0; i + 1 < n; ++i) {
        chain += "j";
        put(chain, static_cast<uint64_t>(i), 4);
        chain += "j";
        put(chain, static_cast<uint64_t>(i + 1), 4);
        chain += "a0";
    }
    chain += "j";
    put(chain, 0, 4);
    chain += ".";
    EXPECT_NE(scan_error(chain).find("nests 2000"), std::string::npos) << scan_error(chain);
    // A cycle: L.append(L).
    EXPECT_NE(scan_error("\x80\x02]q\x00h\x00" "a."s).find("cyclic"), std::string::npos);
    // Malformed programs.
    EXPECT_NE(scan_error("\x80\x02" "a.").find("underflow"), std::string::npos);
    EXPECT_NE(scan_error("\x80\x02)").find("STOP"), std::string::npos);
    EXPECT_NE(scan_error("\x80\x02X\xff\xff\x00\x00" "ab."s).find("past the end"), std::string::npos);
    EXPECT_NE(scan_error("\x80\x02\xff.").find("unsupported opcode"), std::string::npos);
    // End to end: a checkpoint whose pickle nests 300k tuples is refused before the unpickler runs.
    const auto path = write_pth("deep.pth", deep, floats(4));
    EXPECT_NE(error_of([&] { vae::read_torch_checkpoint(path); }).find("nests"), std::string::npos);
}

// Found by fuzz_pth (fuzz/regressions/pth/): LONG_BINPUT 72054639 in a 2 KB checkpoint made libtorch's unpickler
// size its memo table for 72 million entries (1.5 GB, seconds). Memo indices are bounded by the pickle's size.
TEST(PthChecks, MemoIndexBeyondThePickleIsRefused) {
    std::string p = "\x80\x02}r";
    put(p, 72054639, 4);
    p += ".";
    EXPECT_NE(scan_error(p).find("memo index 72054639 beyond the pickle's size"), std::string::npos) << scan_error(p);
    std::string ok = "\x80\x02}r";
    put(ok, 3, 4);
    EXPECT_EQ(scan_error(ok + "."), "");
    const auto path = write_pth("memo.pth", p, floats(4));
    EXPECT_NE(error_of([&] { vae::read_torch_checkpoint(path); }).find("beyond the pickle's size"), std::string::npos);
}

TEST(PthChecks, RecordsLargerThanTheArchiveAreRefused) {
    const auto dir = temp_dir("pth_zip");
    const std::string z = stored_zip({{"archive/data.pkl", tensor_pickle(0, 4, 1)}, {"archive/byteorder", "little"},
                                      {"archive/data/0", floats(4)}, {"archive/version", "3\n"}},
                                     /*declared=*/int64_t{1} << 30);
    std::ofstream(dir + "/bomb.pth", std::ios::binary) << z;
    const auto err = error_of([&] { vae::read_torch_checkpoint(dir + "/bomb.pth"); });
    EXPECT_NE(err.find("declares 1073741824 bytes"), std::string::npos) << err;
}

TEST(PthChecks, GoldenCheckpointPassesEveryCheck) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-vae-tiny/Wan2.1_VAE.pth"));
    const auto t = vae::read_torch_checkpoint(golden("wan-vae-tiny/Wan2.1_VAE.pth"));
    EXPECT_GT(t.size(), 10u);
}
