// The umT5 tokenizer through the sentencepiece library, encoding as Wan's HuggingfaceTokenizer (and diffusers'
// Wan pipelines) call transformers' T5 tokenizer: text cleaned, sentencepiece pieces, EOS appended,
// truncated to text_len (the EOS kept last) and padded with the pad id to text_len.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace surgeon::text {

// Wan's prompt cleaning (wan/modules/tokenizers.py, diffusers prompt_clean) without ftfy: HTML entities
// unescaped twice (the named entities &amp; &lt; &gt; &quot; &apos; &nbsp; and numeric &#N; / &#xH;), every run
// of whitespace (ASCII, NBSP, U+3000, U+2000-U+200A) -> one space, ends stripped.
std::string clean_prompt(const std::string& text);

struct TokenizedPrompts {
    torch::Tensor ids;   // [P, N] int64: pieces, EOS, then pad ids
    torch::Tensor lens;  // [P] int64: tokens before the padding (EOS included), >= 1
};

class UMT5Tokenizer {
public:
    explicit UMT5Tokenizer(const std::string& spiece_model_path);
    ~UMT5Tokenizer();
    UMT5Tokenizer(UMT5Tokenizer&&) noexcept;
    UMT5Tokenizer& operator=(UMT5Tokenizer&&) noexcept;

    // Piece ids of the cleaned text (no EOS, no truncation).
    std::vector<int64_t> encode(const std::string& text) const;
    // Each prompt: encode, truncate to text_len - 1, append EOS, pad to text_len.
    TokenizedPrompts encode_padded(const std::vector<std::string>& prompts, int64_t text_len) const;
    int64_t eos_id() const { return eos_id_; }
    int64_t pad_id() const { return pad_id_; }
    int64_t vocab_size() const;
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    int64_t eos_id_ = 1, pad_id_ = 0;
};

}  // namespace surgeon::text
