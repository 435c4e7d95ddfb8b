// Word-level tokenizer of the synthetic world's closed vocabulary.
#include "world/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/error.h"
#include "world/prompt.h"

namespace surgeon::world {

Tokenizer::Tokenizer() {
    words_ = {"<pad>", "<eos>"};
    for (const auto& w : grammar_words()) words_.push_back(w);
    for (size_t i = 0; i < words_.size(); ++i) ids_[words_[i]] = static_cast<int64_t>(i);
    SURGEON_ASSERT(ids_.size() == words_.size());  // no duplicate words
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
    std::string t = text;
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
    while (!t.empty() && (t.back() == '.' || std::isspace(static_cast<unsigned char>(t.back())))) t.pop_back();
    std::istringstream in(t);
    std::vector<int64_t> ids;
    for (std::string w; in >> w;) {
        auto it = ids_.find(w);
        if (it == ids_.end() || it->second < 2) {
            std::string vocab;
            for (size_t i = 2; i < words_.size(); ++i) vocab += (i > 2 ? " " : "") + words_[i];
            fail("unknown word '{}' in prompt \"{}\": the synthetic world's vocabulary has {} words: {}", w, text,
                 words_.size() - 2, vocab);
        }
        ids.push_back(it->second);
    }
    ids.push_back(kEos);
    return ids;
}

torch::Tensor Tokenizer::encode_padded(const std::string& text, int64_t text_len) const {
    const auto ids = encode(text);
    SURGEON_CHECK(static_cast<int64_t>(ids.size()) <= text_len,
                  "prompt \"{}\" needs {} tokens (with <eos>) but text_len is {}", text, ids.size(), text_len);
    auto out = torch::full({text_len}, kPad, torch::kInt64);  // [text_len]
    std::copy(ids.begin(), ids.end(), out.data_ptr<int64_t>());
    return out;
}

torch::Tensor Tokenizer::encode_batch(const std::vector<std::string>& texts, int64_t text_len) const {
    SURGEON_CHECK(!texts.empty(), "encode_batch needs at least one prompt");
    std::vector<torch::Tensor> rows;
    for (const auto& t : texts) rows.push_back(encode_padded(t, text_len));
    return torch::stack(rows);  // [B, text_len]
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
    std::string out;
    for (int64_t id : ids) {
        SURGEON_CHECK(id >= 0 && id < vocab_size(), "token id {} out of range [0, {})", id, vocab_size());
        if (id == kEos) break;
        if (id == kPad) continue;
        if (!out.empty()) out += ' ';
        out += words_[id];
    }
    return out;
}

std::string Tokenizer::decode(const torch::Tensor& ids) const {
    SURGEON_CHECK(ids.dim() == 1, "decode expects [text_len] ids, got {} dims", ids.dim());
    auto c = ids.to(torch::kCPU, torch::kInt64).contiguous();
    return decode(std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()));
}

}  // namespace surgeon::world
