#!/usr/bin/env python3
"""Golden fixtures for Surgeon's umT5 text encoder and tokenizer (tests/data/umt5-tiny/).

Makes a tiny random transformers `UMT5EncoderModel` and a tiny sentencepiece unigram model trained on text this
script writes itself, and saves, into OUT (default tests/data/umt5-tiny):

  text_encoder/config.json + model.safetensors   the HF/diffusers layout (fp32; every weight is bf16-exact)
  tokenizer/spiece.model                         the sentencepiece model (pad 0, eos 1, unk 2, no bos)
  models_t5_umt5-xxl-enc-bf16.pth                the same weights under Wan's official names, bf16, torch.save
                                                 (an official folder keeps the tokenizer in google/umt5-xxl/:
                                                 the tests assemble that layout from tokenizer/spiece.model)
  expected.safetensors                           ids_512 [P,512], ids_16 [P,16] (int64, as T5TokenizerFast
                                                 encodes for Wan: EOS appended, pad 0, truncated), lens_512 [P],
                                                 context [P,32,dim] fp32 (hidden states of the real tokens of
                                                 the 32-token encoding, zeros after them, as Wan passes them)
  prompts.json                                   the prompts, in order

The weights are rounded to bf16 before the forward, so the bf16 .pth and the fp32 safetensors describe the same
model and share one set of expected hidden states. d_model = 24 matches ../shared/golden/wan-t2v-tiny's
text_dim, so the tiny DiT can use this encoder.

Environment (run once; the network reaches PyPI only; torch is reused from Surgeon's venv):
  python3 -m venv ~/.cache/surgeon/golden-venv
  ~/.cache/surgeon/golden-venv/bin/pip install transformers sentencepiece safetensors protobuf
  echo ~/.cache/surgeon/venv/lib/python3.11/site-packages > \
       ~/.cache/surgeon/golden-venv/lib/python3.11/site-packages/surgeon-torch.pth
  ~/.cache/surgeon/golden-venv/bin/python scripts/make_umt5_golden.py
"""
import argparse
import json
import os
import random

import sentencepiece as spm
import torch
from safetensors.torch import save_file
from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel

# Wan's default negative prompt (wan/configs/shared_config.py, sample_neg_prompt).
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")

PROMPTS = [
    "A red cat walks slowly across a sunny garden.",
    "two blue birds fly over the quiet river at dusk",
    "",
    "A small robot dances in the rain, while a large green dragon watches from the hills and the camera "
    "pans slowly to the left over the old town.",
    "Café déjà vu: ÀÉÎ naïve façade",
    WAN_NEGATIVE_PROMPT,
]

WORDS = ("a the red blue green yellow small large old young cat dog bird robot dragon fish walks runs flies "
         "swims dances jumps over under across through near garden river forest city town street hill sky rain "
         "snow sun night day slowly quickly camera pans zooms left right up down with and while from in on at of "
         "to is are quiet sunny dusk dawn light dark bright water stone tree house car boat").split()


def write_corpus(path, seed):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(3000):
            n = rng.randint(3, 14)
            words = [rng.choice(WORDS) for _ in range(n)]
            if rng.random() < 0.3:
                words[0] = words[0].capitalize()
            f.write(" ".join(words) + rng.choice([".", "", ",", "!"]) + "\n")
        # Every character of the prompts is in the vocabulary, so no prompt needs <unk> or byte fallback (where
        # transformers' conversion and the sentencepiece library may differ).
        for _ in range(3):
            f.write(PROMPTS[4] + "\n" + WAN_NEGATIVE_PROMPT + "\n")


def train_tokenizer(workdir, seed):
    corpus = os.path.join(workdir, "corpus.txt")
    write_corpus(corpus, seed)
    prefix = os.path.join(workdir, "spiece")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, model_type="unigram", vocab_size=280, character_coverage=1.0,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=False, num_threads=1, seed_sentencepiece_size=5000,
        minloglevel=2)
    return prefix + ".model"


def official_name(hf):
    """HF UMT5EncoderModel name -> Wan's official T5Encoder name (wan/modules/t5.py)."""
    if hf in ("shared.weight", "encoder.embed_tokens.weight"):
        return "token_embedding.weight"
    if hf == "encoder.final_layer_norm.weight":
        return "norm.weight"
    parts = hf.split(".")  # encoder.block.N.layer.L.<rest>
    i, rest = parts[2], ".".join(parts[5:])
    table = {
        "SelfAttention.q.weight": "attn.q.weight", "SelfAttention.k.weight": "attn.k.weight",
        "SelfAttention.v.weight": "attn.v.weight", "SelfAttention.o.weight": "attn.o.weight",
        "SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
        "DenseReluDense.wi_0.weight": "ffn.gate.0.weight", "DenseReluDense.wi_1.weight": "ffn.fc1.weight",
        "DenseReluDense.wo.weight": "ffn.fc2.weight",
    }
    if rest == "layer_norm.weight":
        return f"blocks.{i}.norm{1 if parts[4] == '0' else 2}.weight"
    return f"blocks.{i}.{table[rest]}"


def encode(tok, texts, length):
    out = tok(texts, padding="max_length", truncation=True, max_length=length, add_special_tokens=True,
              return_attention_mask=True, return_tensors="pt")
    return out.input_ids, out.attention_mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "umt5-tiny"))
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    out = os.path.abspath(args.out)
    for sub in ("text_encoder", "tokenizer"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)

    spiece = train_tokenizer(os.path.join(out, "tokenizer"), args.seed)
    for extra in ("corpus.txt", "spiece.vocab"):
        os.remove(os.path.join(out, "tokenizer", extra))

    # As google/umt5-xxl's tokenizer loads (transformers' SentencePiece conversion: precompiled charsmap,
    # whitespace split + metaspace), i.e. what Wan's HuggingfaceTokenizer and diffusers run.
    fast = T5Tokenizer.from_pretrained(os.path.dirname(spiece), extra_ids=0)
    ids_512, mask_512 = encode(fast, PROMPTS, 512)
    ids_16, _ = encode(fast, PROMPTS, 16)
    ids_32, mask_32 = encode(fast, PROMPTS, 32)
    sp = spm.SentencePieceProcessor(model_file=spiece)
    for p, row, m in zip(PROMPTS, ids_512, mask_512):
        n = int(m.sum())
        assert row[:n].tolist() == sp.encode(p) + [1], f"sentencepiece disagrees with HF on {p!r}"

    cfg = UMT5Config(vocab_size=sp.get_piece_size() + 8, d_model=24, d_kv=8, d_ff=40, num_layers=2, num_heads=4,
                     relative_attention_num_buckets=8, relative_attention_max_distance=128, dropout_rate=0.0,
                     layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", is_encoder_decoder=False,
                     pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    model = UMT5EncoderModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.randn_like(p) * 0.5 + (1.0 if p.dim() == 1 else 0.0)).bfloat16().float())
        hidden = model(input_ids=ids_32, attention_mask=mask_32).last_hidden_state  # [P,32,dim]
    context = hidden * mask_32.unsqueeze(-1).to(hidden.dtype)  # Wan: trimmed to seq_len, zero-padded

    model.save_pretrained(os.path.join(out, "text_encoder"), safe_serialization=True)
    official = {}
    for name, t in model.state_dict().items():
        key = official_name(name)
        if key in official:
            continue
        official[key] = t.detach().bfloat16().clone()
    torch.save(official, os.path.join(out, "models_t5_umt5-xxl-enc-bf16.pth"))
    save_file({"ids_512": ids_512.contiguous(), "ids_16": ids_16.contiguous(), "ids_32": ids_32.contiguous(),
               "lens_512": mask_512.sum(1).to(torch.int64), "context": context.contiguous()},
              os.path.join(out, "expected.safetensors"))
    with open(os.path.join(out, "prompts.json"), "w", encoding="utf-8") as f:
        json.dump(PROMPTS, f, ensure_ascii=False, indent=1)
    print("lens:", mask_512.sum(1).tolist())
    print("wrote", out)


if __name__ == "__main__":
    main()
