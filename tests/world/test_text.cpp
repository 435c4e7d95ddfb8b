// Tests of the text side: tokenizer round trip and errors, text encoder shapes, zero padding, padding
// invariance and strict state loading. Run: ctest --test-dir build -R 'Tokenizer|TextEncoder'
#include <gtest/gtest.h>

#include "core/error.h"
#include "world/prompt.h"
#include "world/text_encoder.h"
#include "world/tokenizer.h"

using namespace surgeon::world;

TEST(Tokenizer, RoundTripOnWorldPrompts) {
    const Tokenizer tok;
    EXPECT_EQ(tok.vocab_size(), static_cast<int64_t>(grammar_words().size()) + 2);
    EXPECT_EQ(tok.vocabulary()[Tokenizer::kPad], "<pad>");
    EXPECT_EQ(tok.vocabulary()[Tokenizer::kEos], "<eos>");
    int64_t longest = 0;
    for (uint64_t seed = 0; seed < 300; ++seed) {
        const auto p = prompt(sample_spec(seed));
        const auto ids = tok.encode(p);
        EXPECT_EQ(ids.back(), Tokenizer::kEos);
        longest = std::max<int64_t>(longest, ids.size());
        EXPECT_EQ(tok.decode(ids), p);
        const auto padded = tok.encode_padded(p, 32);
        ASSERT_EQ(padded.sizes(), (std::vector<int64_t>{32}));
        EXPECT_EQ(tok.decode(padded), p);
        EXPECT_EQ(padded.ne(Tokenizer::kPad).sum().item<int64_t>(), static_cast<int64_t>(ids.size()));
    }
    EXPECT_LE(longest, 24);  // the default text_len of 32 always suffices
    EXPECT_EQ(tok.decode(tok.encode("A Large RED circle.")), "a large red circle");
    const auto batch = tok.encode_batch({"a red circle", "a small blue square bouncing fast"}, 10);
    EXPECT_EQ(batch.sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(Tokenizer, RejectsUnknownWordsClearly) {
    const Tokenizer tok;
    try {
        tok.encode("a large red hexagon staying still");
        FAIL() << "expected an error";
    } catch (const surgeon::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("unknown word 'hexagon'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("circle"), std::string::npos) << msg;  // lists the vocabulary
    }
    EXPECT_THROW(tok.encode("<pad> red"), surgeon::Error);  // special tokens are not words
    EXPECT_THROW(tok.encode_padded("a large red circle staying still on a gray background", 5), surgeon::Error);
}

TEST(TextEncoder, ShapesAndZeroPadding) {
    torch::manual_seed(0);
    TextEncoder enc(TextEncoderConfig{0, 32, 64, 4, 2, 128});
    const Tokenizer tok;
    const auto ids = tok.encode_batch({"a large red circle staying still on a gray background",
                                       "a small blue square bouncing fast on a black to teal vertical gradient background"},
                                      32);  // [2, 32]
    const auto out = enc->forward(ids);    // [2, 32, 64]
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 32, 64}));
    const auto pad = ids.eq(Tokenizer::kPad);  // [2, 32]
    EXPECT_EQ(out.index({pad}).abs().max().item<float>(), 0.0f);
    EXPECT_GT(out.index({~pad}).abs().amin(-1).min().item<float>(), 0.0f);
    // Real positions do not depend on how much padding follows (keys at <pad> are masked).
    const auto short_ids = ids.slice(1, 0, 24);  // [2, 24], still holds every real token
    const auto out_short = enc->forward(short_ids);
    EXPECT_TRUE(torch::allclose(out_short, out.slice(1, 0, 24), 1e-5, 1e-5));
    // Gradients reach the embeddings (it is trained jointly with the DiT).
    out.pow(2).sum().backward();
    for (const auto& p : enc->named_parameters()) EXPECT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_THROW(enc->forward(torch::zeros({1, 40}, torch::kInt64)), surgeon::Error);
}

// Word order reaches the context at initialisation: the same words in another order ("purple to navy" vs "navy to
// purple"; two objects' colours exchanged) give a different set of context vectors: 0.11-0.14 relative with the
// positions at the token embedding's scale, 0.003-0.005 with the old N(0, 0.02^2) positions (a bag of words).
TEST(TextEncoder, WordOrderChangesTheContextAtInit) {
    const Tokenizer tok;
    const std::vector<std::pair<std::string, std::string>> pairs{
        {"a large red circle staying still on a purple to navy horizontal gradient background",
         "a large red circle staying still on a navy to purple horizontal gradient background"},
        {"a small red square moving down fast on a gray background and a small orange circle moving right fast",
         "a small orange square moving down fast on a gray background and a small red circle moving right fast"}};
    for (int seed = 0; seed < 3; ++seed) {
        torch::manual_seed(seed);
        TextEncoder enc(TextEncoderConfig{0, 32, 256, 4, 2, 1024});
        torch::NoGradGuard ng;
        for (const auto& [a, b] : pairs) {
            // The DiT's cross-attention sees the context as a set (no positions of its own), so compare sets: each
            // real token's vector in b to its nearest one in a (zero for a bag of words, whatever the order).
            const auto ia = tok.encode_batch({a}, 32), ib = tok.encode_batch({b}, 32);
            const auto ca = enc->forward(ia)[0].index({ia[0].ne(0)}), cb = enc->forward(ib)[0].index({ib[0].ne(0)});
            const double nearest = torch::cdist(cb, ca).amin(1).mean().item<double>();
            const double rel = nearest / ca.norm(2, 1).mean().item<double>();
            EXPECT_GT(rel, 0.05) << "seed " << seed << ": " << a;
        }
    }
}

TEST(TextEncoder, StateRoundTripUnderPrefix) {
    torch::manual_seed(0);
    TextEncoder a(TextEncoderConfig{0, 32, 64, 4, 2, 128});
    torch::manual_seed(1);
    TextEncoder b(TextEncoderConfig{0, 32, 64, 4, 2, 128});
    auto state = text_encoder_state(a);
    for (const auto& kv : state) EXPECT_EQ(kv.first.rfind("text_encoder.", 0), 0u) << kv.first;
    EXPECT_TRUE(state.count("text_encoder.token_embedding.weight"));
    EXPECT_TRUE(state.count("text_encoder.layers.1.self_attn.qkv.weight"));
    EXPECT_TRUE(state.count("text_encoder.layers.0.ffn.2.bias"));
    state["blocks.0.self_attn.q.weight"] = torch::zeros({2});  // DiT keys beside it are ignored
    load_text_encoder_state(b, state);
    const auto ids = Tokenizer().encode_batch({"a small green diamond moving up slowly on a olive background"}, 32);
    EXPECT_TRUE(torch::equal(a->forward(ids), b->forward(ids)));
    auto missing = state;
    missing.erase("text_encoder.norm.weight");
    EXPECT_THROW(load_text_encoder_state(b, missing), surgeon::Error);
    auto extra = state;
    extra["text_encoder.layers.5.norm1.weight"] = torch::zeros({64});
    EXPECT_THROW(load_text_encoder_state(b, extra), surgeon::Error);
    auto wrong = state;
    wrong["text_encoder.pos_embedding"] = torch::zeros({16, 64});
    EXPECT_THROW(load_text_encoder_state(b, wrong), surgeon::Error);
}
