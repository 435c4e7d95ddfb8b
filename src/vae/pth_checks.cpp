// Bounds on untrusted .pth files (see pth_checks.h). The pickle scan runs the pickle machine abstractly: every
// stack entry is an object id, containers record their children, and after STOP the longest path from the root
// (iteratively, refusing cycles) is the nesting depth.
#include "vae/pth_checks.h"

#include <fstream>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/tensor_checks.h"

namespace surgeon::vae {

namespace {

constexpr int32_t kLeaf = 0;   // every scalar, string and global shares this id (no children)
constexpr int32_t kMark = -1;  // a MARK on the stack

struct PickleScan {
    const uint8_t* p;
    size_t n, pos = 0;
    std::string where;
    std::vector<int32_t> stack;
    std::vector<std::vector<int32_t>> children{{}};  // node 0 = kLeaf
    std::unordered_map<uint64_t, int32_t> memo;

    [[noreturn]] void bad(const std::string& what) const { fail("{}: malformed pickle at byte {}: {}", where, pos, what); }
    uint64_t read_le(int bytes) {
        if (n - pos < static_cast<size_t>(bytes)) bad("truncated argument");
        uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[pos + i]) << (8 * i);
        pos += static_cast<size_t>(bytes);
        return v;
    }
    void skip(uint64_t bytes) {
        if (bytes > n - pos) bad("argument runs past the end");
        pos += static_cast<size_t>(bytes);
    }
    void skip_line() {
        while (pos < n && p[pos] != '\n') ++pos;
        if (pos == n) bad("unterminated text argument");
        ++pos;
    }
    int32_t pop() {
        if (stack.empty() || stack.back() == kMark) bad("stack underflow");
        const int32_t v = stack.back();
        stack.pop_back();
        return v;
    }
    int32_t top() {
        if (stack.empty() || stack.back() == kMark) bad("stack underflow");
        return stack.back();
    }
    std::vector<int32_t> pop_to_mark() {
        std::vector<int32_t> items;
        while (!stack.empty() && stack.back() != kMark) items.push_back(pop());
        if (stack.empty()) bad("no MARK");
        stack.pop_back();
        return items;
    }
    int32_t node(std::vector<int32_t> kids) {
        SURGEON_CHECK(children.size() < (size_t{1} << 30), "{}: pickle has too many objects", where);
        children.push_back(std::move(kids));
        return static_cast<int32_t>(children.size() - 1);
    }
    void add_children(int32_t parent, const std::vector<int32_t>& kids) {
        if (parent == kLeaf) return;  // mutating a scalar: the real unpickler refuses it
        for (int32_t k : kids)
            if (k != kLeaf) children[static_cast<size_t>(parent)].push_back(k);
    }
    // libtorch's unpickler sizes its memo table by the largest index: an index beyond what the program could have
    // memoised (one object per byte at most) would make a 2 KB file allocate gigabytes.
    void put(uint64_t idx) {
        if (idx > n) bad("memo index " + std::to_string(idx) + " beyond the pickle's size");
        memo[idx] = top();
    }
    void get(uint64_t idx) {
        auto it = memo.find(idx);
        if (it == memo.end()) bad("memo entry not found");
        stack.push_back(it->second);
    }
    bool step();
    int64_t depth_of(int32_t root) const;
};

// Executes one opcode; false after STOP.
bool PickleScan::step() {
    if (pos >= n) bad("no STOP opcode");
    const uint8_t op = p[pos++];
    switch (op) {
        case 0x80: skip(1); break;                        // PROTO
        case 0x95: skip(8); break;                        // FRAME
        case '(': stack.push_back(kMark); break;          // MARK
        case '.': return false;                           // STOP
        case '0': pop(); break;                           // POP
        case '1': pop_to_mark(); break;                   // POP_MARK
        case '2': stack.push_back(top()); break;          // DUP
        case 'N': case 0x88: case 0x89: stack.push_back(kLeaf); break;  // NONE, NEWTRUE, NEWFALSE
        case 'J': skip(4); stack.push_back(kLeaf); break;  // BININT
        case 'K': skip(1); stack.push_back(kLeaf); break;  // BININT1
        case 'M': skip(2); stack.push_back(kLeaf); break;  // BININT2
        case 'G': skip(8); stack.push_back(kLeaf); break;  // BINFLOAT
        case 0x82: skip(1); stack.push_back(kLeaf); break;  // EXT1
        case 0x83: skip(2); stack.push_back(kLeaf); break;  // EXT2
        case 0x84: skip(4); stack.push_back(kLeaf); break;  // EXT4
        case 0x8a: case 'C': case 'U': case 0x8c: skip(read_le(1)); stack.push_back(kLeaf); break;  // LONG1, short strings
        case 0x8b: case 'B': case 'T': case 'X': skip(read_le(4)); stack.push_back(kLeaf); break;  // LONG4, strings
        case 0x8d: case 0x8e: skip(read_le(8)); stack.push_back(kLeaf); break;  // BINUNICODE8, BINBYTES8
        case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': skip_line(); stack.push_back(kLeaf); break;
        case 'c': skip_line(); skip_line(); stack.push_back(kLeaf); break;  // GLOBAL
        case 0x93: pop(); pop(); stack.push_back(kLeaf); break;            // STACK_GLOBAL
        case ')': case ']': case '}': case 0x8f: stack.push_back(node({})); break;  // empty containers
        case 't': case 'l': case 'd': case 0x91: stack.push_back(node(pop_to_mark())); break;  // TUPLE, LIST, DICT, FROZENSET
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
            std::vector<int32_t> kids;
            for (int i = 0; i < op - 0x84; ++i) kids.push_back(pop());
            stack.push_back(node(std::move(kids)));
            break;
        }
        case 'a': case 'b': { const int32_t v = pop(); add_children(top(), {v}); break; }  // APPEND, BUILD
        case 's': { const int32_t v = pop(), k = pop(); add_children(top(), {k, v}); break; }  // SETITEM
        case 'e': case 'u': case 0x90: { auto items = pop_to_mark(); add_children(top(), items); break; }  // APPENDS, SETITEMS, ADDITEMS
        case 'R': case 0x81: { const int32_t a = pop(), f = pop(); stack.push_back(node({f, a})); break; }  // REDUCE, NEWOBJ
        case 0x92: { const int32_t k = pop(), a = pop(), c = pop(); stack.push_back(node({c, a, k})); break; }  // NEWOBJ_EX
        case 'Q': stack.push_back(node({pop()})); break;  // BINPERSID
        case 'q': put(read_le(1)); break;                 // BINPUT
        case 'r': put(read_le(4)); break;                 // LONG_BINPUT
        case 0x94: put(memo.size()); break;               // MEMOIZE
        case 'h': get(read_le(1)); break;                 // BINGET
        case 'j': get(read_le(4)); break;                 // LONG_BINGET
        default: bad(fmt::format("unsupported opcode 0x{:02x}", op));
    }
    return true;
}

// Longest chain of containers below `root` (iterative post-order DFS; a cycle is refused).
int64_t PickleScan::depth_of(int32_t root) const {
    std::vector<int64_t> depth(children.size(), -1);
    std::vector<uint8_t> state(children.size(), 0);  // 0 new, 1 on the path, 2 done
    std::vector<std::pair<int32_t, size_t>> path{{root, 0}};
    state[static_cast<size_t>(root)] = 1;
    while (!path.empty()) {
        auto& [v, next] = path.back();
        const auto& kids = children[static_cast<size_t>(v)];
        if (next < kids.size()) {
            const int32_t c = kids[next++];
            SURGEON_CHECK(state[static_cast<size_t>(c)] != 1, "{}: the pickle builds a cyclic structure", where);
            if (state[static_cast<size_t>(c)] == 0) {
                state[static_cast<size_t>(c)] = 1;
                path.emplace_back(c, 0);
            }
            continue;
        }
        int64_t d = 0;
        for (int32_t c : kids) d = std::max(d, depth[static_cast<size_t>(c)]);
        depth[static_cast<size_t>(v)] = d + 1;
        state[static_cast<size_t>(v)] = 2;
        path.pop_back();
    }
    return depth[static_cast<size_t>(root)];
}

}  // namespace

void check_pickle_structure(const uint8_t* data, size_t size, const std::string& where, int64_t max_depth) {
    PickleScan s{data, size};
    s.where = where;
    while (s.step()) {
    }
    const int32_t root = s.pop();
    const int64_t depth = root == kLeaf ? 0 : s.depth_of(root);
    SURGEON_CHECK(depth <= max_depth, "{}: the pickle nests {} containers deep (at most {})", where, depth, max_depth);
}

namespace {
uint64_t le(const std::string& b, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
    return v;
}
}  // namespace

void check_zip_records(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    SURGEON_CHECK(in.good(), "{}: cannot open", path);
    const uint64_t file_size = static_cast<uint64_t>(in.tellg());
    // End of central directory: 22 bytes + a comment of at most 65535 bytes at the end of the file.
    const uint64_t tail_len = std::min<uint64_t>(file_size, 22 + 65535);
    std::string tail(tail_len, '\0');
    in.seekg(static_cast<std::streamoff>(file_size - tail_len));
    in.read(tail.data(), static_cast<std::streamsize>(tail_len));
    size_t eocd = std::string::npos;
    for (size_t i = tail_len >= 22 ? tail_len - 22 + 1 : 0; i-- > 0;)
        if (le(tail, i, 4) == 0x06054b50) {
            eocd = i;
            break;
        }
    SURGEON_CHECK(eocd != std::string::npos, "{}: not a zip archive (no end of central directory)", path);
    const uint64_t entries = le(tail, eocd + 10, 2), cd_size = le(tail, eocd + 12, 4), cd_off = le(tail, eocd + 16, 4);
    if (cd_off == 0xffffffffu || entries == 0xffffu) return;  // zip64 (> 4 GiB): libtorch's reader bounds it
    SURGEON_CHECK(cd_size <= file_size && cd_off <= file_size - cd_size, "{}: zip central directory lies outside the file",
                  path);
    std::string cd(cd_size, '\0');
    in.seekg(static_cast<std::streamoff>(cd_off));
    in.read(cd.data(), static_cast<std::streamsize>(cd_size));
    size_t at = 0;
    for (uint64_t e = 0; e < entries; ++e) {
        SURGEON_CHECK(at + 46 <= cd.size() && le(cd, at, 4) == 0x02014b50, "{}: corrupt zip central directory", path);
        const uint64_t comp = le(cd, at + 20, 4), uncomp = le(cd, at + 24, 4);
        const uint64_t name_len = le(cd, at + 28, 2), extra = le(cd, at + 30, 2), comment = le(cd, at + 32, 2);
        SURGEON_CHECK(at + 46 + name_len <= cd.size(), "{}: corrupt zip central directory", path);
        const std::string name = cd.substr(at + 46, name_len);
        if (comp != 0xffffffffu && uncomp != 0xffffffffu)
            SURGEON_CHECK(comp <= file_size && uncomp <= file_size,
                          "{}: zip record '{}' declares {} bytes ({} stored) in a {}-byte file: a compressed record "
                          "(torch.save stores them uncompressed; possibly a zip bomb)",
                          path, name, uncomp, comp, file_size);
        at += 46 + name_len + extra + comment;
    }
}

void check_tensor_in_storage(const torch::Tensor& t, const std::string& where) {
    if (!t.defined()) return;
    const int64_t item = static_cast<int64_t>(t.element_size());
    const int64_t nbytes = t.has_storage() ? static_cast<int64_t>(t.storage().nbytes()) : 0;
    const int64_t offset = t.storage_offset();
    SURGEON_CHECK(offset >= 0, "{}: storage offset {} is negative", where, offset);
    for (int64_t i = 0; i < t.dim(); ++i) {
        SURGEON_CHECK(t.size(i) >= 0, "{}: size {} of dim {} is negative", where, t.size(i), i);
        if (t.size(i) == 0) return;  // no element is ever read
    }
    // The last element addressed, in elements: offset + sum (size_i - 1) * stride_i, each step overflow-checked.
    int64_t last = offset;
    for (int64_t i = 0; i < t.dim(); ++i) {
        const int64_t st = t.stride(i), span = t.size(i) - 1;
        SURGEON_CHECK(st >= 0, "{}: stride {} of dim {} is negative", where, st, i);
        int64_t step = 0;
        SURGEON_CHECK(!__builtin_mul_overflow(span, st, &step) && !__builtin_add_overflow(last, step, &last),
                      "{}: strides {} with sizes {} overflow", where, shape_str(t.strides()), shape_str(t.sizes()));
    }
    int64_t end_bytes = 0;
    SURGEON_CHECK(!__builtin_add_overflow(last, int64_t{1}, &last) && !__builtin_mul_overflow(last, item, &end_bytes) &&
                      end_bytes <= nbytes,
                  "{}: shape {} with strides {} at offset {} reaches past its storage ({} bytes)", where,
                  shape_str(t.sizes()), shape_str(t.strides()), offset, nbytes);
}

}  // namespace surgeon::vae
