// sentencepiece-backed umT5 tokenizer and Wan's prompt cleaning.
#include "text/umt5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>

#include "core/error.h"

namespace surgeon::text {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// One pass of HTML unescaping for the common entities; anything else is left as written.
std::string html_unescape(const std::string& s) {
    static const std::pair<const char*, uint32_t> named[] = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", 0xA0}};
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        const size_t semi = s[i] == '&' ? s.find(';', i + 1) : std::string::npos;
        if (semi == std::string::npos || semi - i > 10) {
            out += s[i];
            continue;
        }
        const std::string body = s.substr(i + 1, semi - i - 1);
        bool done = false;
        if (body.size() > 1 && body[0] == '#') {
            const bool hex = body[1] == 'x' || body[1] == 'X';
            const std::string digits = body.substr(hex ? 2 : 1);
            const char* ok = hex ? "0123456789abcdefABCDEF" : "0123456789";
            if (!digits.empty() && digits.find_first_not_of(ok) == std::string::npos) {
                const unsigned long cp = std::stoul(digits, nullptr, hex ? 16 : 10);
                if (cp > 0 && cp < 0x110000 && !(cp >= 0xD800 && cp < 0xE000)) {
                    append_utf8(out, static_cast<uint32_t>(cp));
                    done = true;
                }
            }
        } else {
            for (const auto& [name, cp] : named)
                if (body == name) {
                    append_utf8(out, cp);
                    done = true;
                }
        }
        if (done) {
            i = semi;
        } else {
            out += s[i];
        }
    }
    return out;
}

// Length of a whitespace character at s[i] (0 if none): ASCII \t\n\v\f\r and space, U+00A0, U+3000,
// U+2000-U+200A, U+1680, U+2028/2029, U+202F, U+205F, U+0085.
size_t space_len(const std::string& s, size_t i) {
    const auto u = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    if (std::string(" \t\n\v\f\r").find(s[i]) != std::string::npos && s[i] != '\0') return 1;
    if (i + 1 < s.size() && u(0) == 0xC2 && (u(1) == 0xA0 || u(1) == 0x85)) return 2;
    if (i + 2 < s.size()) {
        if (u(0) == 0xE3 && u(1) == 0x80 && u(2) == 0x80) return 3;
        if (u(0) == 0xE1 && u(1) == 0x9A && u(2) == 0x80) return 3;
        if (u(0) == 0xE2 && u(1) == 0x80 && (u(2) <= 0x8A || u(2) == 0xA8 || u(2) == 0xA9 || u(2) == 0xAF)) return 3;
        if (u(0) == 0xE2 && u(1) == 0x81 && u(2) == 0x9F) return 3;
    }
    return 0;
}

}  // namespace

std::string clean_prompt(const std::string& text) {
    const std::string s = html_unescape(html_unescape(text));
    std::string out;
    bool pending_space = false;
    for (size_t i = 0; i < s.size();) {
        if (const size_t n = space_len(s, i)) {
            pending_space = !out.empty();
            i += n;
            continue;
        }
        if (pending_space) out += ' ';
        pending_space = false;
        out += s[i++];
    }
    return out;
}

UMT5Tokenizer::UMT5Tokenizer(const std::string& path) : path_(path) {
    SURGEON_CHECK(std::filesystem::is_regular_file(path), "tokenizer '{}' does not exist (expected a sentencepiece "
                  "spiece.model)", path);
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = sp_->Load(path);
    SURGEON_CHECK(status.ok(), "{}: not a sentencepiece model ({})", path, status.ToString());
    // transformers' T5 tokenizer looks the special tokens up by their pieces.
    eos_id_ = sp_->PieceToId("</s>");
    pad_id_ = sp_->PieceToId("<pad>");
    const int unk = sp_->unk_id();
    SURGEON_CHECK(eos_id_ != unk && pad_id_ != unk, "{}: the sentencepiece model has no '</s>' or '<pad>' piece "
                  "(expected umT5's pad 0, eos 1)", path);
}

UMT5Tokenizer::~UMT5Tokenizer() = default;
UMT5Tokenizer::UMT5Tokenizer(UMT5Tokenizer&&) noexcept = default;
UMT5Tokenizer& UMT5Tokenizer::operator=(UMT5Tokenizer&&) noexcept = default;

int64_t UMT5Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<int64_t> UMT5Tokenizer::encode(const std::string& text) const {
    std::vector<int> ids;
    const auto status = sp_->Encode(clean_prompt(text), &ids);
    SURGEON_CHECK(status.ok(), "{}: cannot tokenize the prompt ({})", path_, status.ToString());
    return {ids.begin(), ids.end()};
}

TokenizedPrompts UMT5Tokenizer::encode_padded(const std::vector<std::string>& prompts, int64_t text_len) const {
    SURGEON_CHECK(text_len >= 1, "text length must be at least 1 (room for EOS), got {}", text_len);
    const int64_t p = static_cast<int64_t>(prompts.size());
    TokenizedPrompts out{torch::full({p, text_len}, pad_id_, torch::kLong), torch::zeros({p}, torch::kLong)};
    auto ids = out.ids.accessor<int64_t, 2>();
    for (int64_t i = 0; i < p; ++i) {
        auto pieces = encode(prompts[i]);
        if (static_cast<int64_t>(pieces.size()) > text_len - 1) pieces.resize(text_len - 1);
        for (size_t j = 0; j < pieces.size(); ++j) ids[i][j] = pieces[j];
        ids[i][pieces.size()] = eos_id_;
        out.lens[i] = static_cast<int64_t>(pieces.size()) + 1;
    }
    return out;
}

}  // namespace surgeon::text
