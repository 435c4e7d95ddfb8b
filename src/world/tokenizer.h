// Word-level tokenizer over the world's closed vocabulary: <pad> = 0, <eos> = 1, then the grammar's words.
// Prompts become fixed-length id rows [text_len] (words, <eos>, then <pad>), as Wan pads umT5 input.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace surgeon::world {

class Tokenizer {
public:
    static constexpr int64_t kPad = 0, kEos = 1;
    Tokenizer();  // the world's vocabulary (see grammar_words())

    int64_t vocab_size() const { return static_cast<int64_t>(words_.size()); }
    const std::vector<std::string>& vocabulary() const { return words_; }
    // Word ids followed by <eos>. Lower-cases, splits on whitespace, drops a trailing '.'.
    // Unknown words throw surgeon::Error naming the word and listing the vocabulary.
    std::vector<int64_t> encode(const std::string& text) const;
    // [text_len] int64: ids, <eos>, <pad>...; throws if the prompt needs more than text_len tokens.
    torch::Tensor encode_padded(const std::string& text, int64_t text_len) const;
    // [B, text_len] int64.
    torch::Tensor encode_batch(const std::vector<std::string>& texts, int64_t text_len) const;
    // Words up to the first <eos> (or the end), <pad> skipped, joined by single spaces.
    std::string decode(const std::vector<int64_t>& ids) const;
    std::string decode(const torch::Tensor& ids) const;  // [text_len]

private:
    std::vector<std::string> words_;
    std::map<std::string, int64_t> ids_;
};

}  // namespace surgeon::world
