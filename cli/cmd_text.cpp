// `surgeon text-encode`: prompts -> umT5 text context as Wan's pipelines pass it to the DiT (out.ids [P, N]
// int64, out.context [P, N, dim] float32: hidden states of the real tokens, zeros after them; out.lens [P]).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/names.h"
#include "core/safetensors.h"
#include "text/text_encode.h"

namespace surgeon::cli {

namespace {

// The umT5 encoder's precisions (--dtype): fp32, or bf16 as Wan runs it (norms and softmax in fp32).
inline constexpr EnumName<torch::ScalarType> kTextDtypeNames[] = {{torch::kFloat32, "fp32"}, {torch::kBFloat16, "bf16"}};

struct TextEncodeArgs {
    std::string model, out, device = "cpu", dtype = "fp32";
    std::vector<std::string> prompts;
    int64_t text_len = 0;  // 0: the model's (official config.json text_len, else 512)
    bool negative = false;
};

void run_text_encode(TextEncodeArgs a) {
    const auto device = parse_device(a.device);
    SURGEON_CHECK(a.text_len >= 0, "--text-len must be positive, got {}", a.text_len);
    if (a.negative) a.prompts.push_back(text::kWanNegativePrompt);
    SURGEON_CHECK(!a.prompts.empty(), "no prompt: give --prompt TEXT (repeatable) or --negative");
    auto te = text::load_text_encoder(a.model, device, parse_name(kTextDtypeNames, a.dtype, "dtype"));
    const int64_t n = a.text_len > 0 ? a.text_len : te.folder.text_len;
    auto enc = text::encode_prompts(te, a.prompts, n);
    TensorMap out{{"out.ids", enc.ids.contiguous()},
                  {"out.lens", enc.lens.contiguous()},
                  {"out.context", enc.context.to(torch::kCPU).contiguous()}};
    save_safetensors(a.out, out, {{"surgeon.command", "text-encode"}, {"surgeon.dtype", a.dtype}});
    for (size_t i = 0; i < a.prompts.size(); ++i)
        std::printf("prompt %zu: %lld tokens (text_len %lld)\n", i, static_cast<long long>(enc.lens[i].item<int64_t>()),
                    static_cast<long long>(n));
}

}  // namespace

void register_text_encode(CLI::App& app) {
    auto a = std::make_shared<TextEncodeArgs>();
    auto* cmd = app.add_subcommand("text-encode", "umT5 text context of prompts: out.ids [P,N], out.context [P,N,dim]");
    cmd->add_option("--model", a->model,
                    "official Wan folder (models_t5_umt5-xxl-enc-bf16.pth + google/umt5-xxl/), diffusers Wan folder, "
                    "or a folder with text_encoder/ and tokenizer/spiece.model")
        ->required();
    cmd->add_option("--prompt", a->prompts, "prompt (repeatable; one row each, in order)");
    cmd->add_flag("--negative", a->negative, "also encode Wan's default negative prompt (last row)");
    cmd->add_option("--text-len", a->text_len, "tokens per row N (default: the model's text_len, 512)");
    cmd->add_option("--out", a->out, "output safetensors file (out.ids, out.lens, out.context)")->required();
    add_device_option(cmd, a->device);
    cmd->add_option("--dtype", a->dtype, "precision (bf16: Wan's umT5 recipe, norms and softmax in fp32)")
        ->check(CLI::IsMember(names_of(kTextDtypeNames)))
        ->capture_default_str();
    cmd->callback([a]() { run_text_encode(*a); });
}

}  // namespace surgeon::cli
