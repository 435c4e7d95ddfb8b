// Safetensors reader/writer: round trips for every float dtype, sharding, and a clear error for each kind
// of corrupt file (truncated, absurd or invalid header, bad offsets, overlaps, unknown dtype).
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

namespace {
void write_raw(const std::string& path, const std::string& header, const std::string& data, int64_t size_override = -1) {
    std::ofstream o(path, std::ios::binary);
    uint64_t n = size_override >= 0 ? static_cast<uint64_t>(size_override) : header.size();
    for (int i = 0; i < 8; ++i) o.put(static_cast<char>((n >> (8 * i)) & 0xff));
    o << header << data;
}
}  // namespace

TEST(Safetensors, RoundTripAllFloatDtypesAndMetadata) {
    auto dir = temp_dir("st_rt");
    TensorMap m{{"a", torch::randn({3, 4})},
                {"b.bf16", torch::randn({5}).to(torch::kBFloat16)},
                {"c.f16", torch::randn({2, 2, 2}).to(torch::kFloat16)},
                {"d.i64", torch::arange(7)},
                {"e.empty", torch::zeros({0, 3})}};
    save_safetensors(dir + "/x.safetensors", m, {{"k", "v"}});
    Metadata meta;
    auto r = load_safetensors(dir + "/x.safetensors", &meta);
    EXPECT_EQ(meta.at("k"), "v");
    ASSERT_EQ(r.size(), m.size());
    for (const auto& [n, t] : m) {
        EXPECT_EQ(r.at(n).scalar_type(), t.scalar_type()) << n;
        EXPECT_TRUE(torch::equal(r.at(n), t)) << n;
    }
    // The data section starts 8-byte aligned.
    SafetensorsFile f(dir + "/x.safetensors");
    EXPECT_EQ(f.tensors().size(), 5u);
}

TEST(Safetensors, ShardedRoundTrip) {
    auto dir = temp_dir("st_shard");
    TensorMap m;
    for (int i = 0; i < 10; ++i) m["t" + std::to_string(i)] = torch::randn({100});
    auto files = save_sharded_safetensors(dir, "model", m, 1000);
    EXPECT_GE(files.size(), 4u);  // 400 bytes per tensor, 2 per shard -> 5 shards + index
    auto r = load_sharded_safetensors(dir + "/model.safetensors.index.json");
    for (const auto& [n, t] : m) EXPECT_TRUE(torch::equal(r.at(n), t));
}

TEST(Safetensors, AtomicWriteLeavesNoPartialFile) {
    auto dir = temp_dir("st_atomic");
    EXPECT_THROW(save_safetensors(dir + "/missing_folder/x.safetensors", {{"a", torch::ones({1})}}), Error);
    EXPECT_FALSE(std::filesystem::exists(dir + "/missing_folder"));
    EXPECT_FALSE(std::filesystem::exists(dir + "/missing_folder/x.safetensors.tmp." + std::to_string(::getpid())));
}

// Folders written as a whole (checkpoints, exported models): replaced only when complete.
TEST(AtomicWriteDir, ReplacesWholeFolderOrLeavesItUntouched) {
    auto base = temp_dir("atomic_dir") + "/d";
    atomic_write_dir(base, [](const std::string& tmp) { std::ofstream(tmp + "/a.txt") << "one"; });
    EXPECT_EQ(read_text_file(base + "/a.txt"), "one");
    atomic_write_dir(base, [](const std::string& tmp) { std::ofstream(tmp + "/b.txt") << "two"; });
    EXPECT_FALSE(std::filesystem::exists(base + "/a.txt"));  // the old folder is gone, not merged
    EXPECT_EQ(read_text_file(base + "/b.txt"), "two");
    auto err = error_of([&] {
        atomic_write_dir(base, [](const std::string& tmp) {
            std::ofstream(tmp + "/c.txt") << "half";
            surgeon::fail("writer failed");
        });
    });
    EXPECT_EQ(err, "writer failed");
    EXPECT_EQ(read_text_file(base + "/b.txt"), "two");
    EXPECT_FALSE(std::filesystem::exists(base + "/c.txt"));
    EXPECT_FALSE(std::filesystem::exists(base + ".tmp"));
    EXPECT_FALSE(std::filesystem::exists(base + ".old"));
}

TEST(Safetensors, CorruptFilesGiveClearErrors) {
    auto dir = temp_dir("st_bad");
    const std::string p = dir + "/bad.safetensors";
    auto expect_error = [&](const std::string& needle) {
        auto msg = error_of([&] { load_safetensors(p); });
        EXPECT_NE(msg.find(needle), std::string::npos) << "message was: " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    };
    { std::ofstream(p) << "abc"; }
    expect_error("truncated");
    // header, data, declared header size (-1: the real one), what the error says
    const std::string f32_2 = R"("a": {"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
    const struct {
        std::string header, data;
        int64_t size;
        const char* needle;
    } cases[] = {
        {"{}", "", int64_t{1} << 40, "header size"},
        {"{" + f32_2 + "}", "1234", 1000, "truncated"},
        {"{not json", "", -1, "invalid JSON"},
        {"[1,2]", "", -1, "not a JSON object"},
        {"{" + f32_2 + "}", "1234", -1, "outside the data section"},
        {R"({"a": {"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678", -1, "12 bytes"},
        {R"({"a": {"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", "12345678", -1, "unsupported safetensors dtype 'Q4'"},
        {R"({"a": {"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "12345678", -1, "non-negative"},
        {"{" + f32_2 + R"(, "b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", "123456789012", -1, "overlap"},
        {R"({"a": {"dtype":"F32","shape":[2]}})", "12345678", -1, "needs dtype, shape and data_offsets"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.needle);
        write_raw(p, c.header, c.data, c.size);
        expect_error(c.needle);
    }
    EXPECT_NE(error_of([&] { load_safetensors(dir + "/nope.safetensors"); }).find("does not exist"), std::string::npos);
}

TEST(Safetensors, ShardIndexErrors) {
    auto dir = temp_dir("st_index");
    save_safetensors(dir + "/s1.safetensors", {{"a", torch::ones({2})}});
    { std::ofstream(dir + "/i.json") << R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})"; }
    auto msg = error_of([&] { load_sharded_safetensors(dir + "/i.json"); });
    EXPECT_NE(msg.find("'b' listed in the index is missing"), std::string::npos) << msg;
    { std::ofstream(dir + "/i.json") << R"({"weight_map": {"a": "../s1.safetensors"}})"; }
    EXPECT_NE(error_of([&] { load_sharded_safetensors(dir + "/i.json"); }).find("plain file name"), std::string::npos);
    { std::ofstream(dir + "/i.json") << R"({"nothing": 1})"; }
    EXPECT_NE(error_of([&] { load_sharded_safetensors(dir + "/i.json"); }).find("weight_map"), std::string::npos);
}
