// Wan2.1 DiT forward, following wan/modules/model.py line by line (see wan-reference.md §1).
#include "model/wan_model.h"

#include "attention/softmax_attention.h"
#include "core/error.h"
#include "core/tensor_checks.h"
#include "ops/dit_ops.h"

namespace surgeon {
namespace F = torch::nn::functional;

Precision parse_precision(const std::string& s) { return parse_name(kPrecisionNames, s, "dtype"); }
std::string to_string(Precision p) { return name_of(kPrecisionNames, p); }

namespace {
// Linear in the compute dtype (autocast semantics: inputs and weights cast, output in compute dtype).
torch::Tensor linear(const torch::nn::Linear& l, const torch::Tensor& x, torch::ScalarType dt) {
    auto w = l->weight.scalar_type() == dt ? l->weight : l->weight.to(dt);
    auto b = l->bias.defined() && l->bias.scalar_type() != dt ? l->bias.to(dt) : l->bias;
    return F::linear(x.to(dt), w, b);
}
torch::nn::Linear seq_linear(const torch::nn::Sequential& s, size_t i) { return torch::nn::Linear(s->ptr<torch::nn::LinearImpl>(i)); }
// LayerNorm without affine parameters, computed in fp32 and cast back (WanLayerNorm), returned in `out`.
// A bf16 input with a bf16 `out` goes through the fused kernel directly (fp32 statistics inside).
torch::Tensor layer_norm(const torch::Tensor& x, double eps, torch::ScalarType out) {
    const auto o = F::LayerNormFuncOptions({x.size(-1)}).eps(eps);
    if (x.scalar_type() == out && out == torch::kBFloat16) return F::layer_norm(x, o);
    return F::layer_norm(x.to(torch::kFloat32), o).to(x.scalar_type()).to(out);
}
torch::Tensor gelu_tanh(const torch::Tensor& x) { return F::gelu(x, F::GELUFuncOptions().approximate("tanh")); }
// q, k, v, o (Linear C->C with bias) and the q/k RMSNorms, shared by self- and cross-attention.
template <typename Attention>
void register_attention_projections(Attention& a, int64_t dim, double eps) {
    a.q = a.register_module("q", torch::nn::Linear(dim, dim));
    a.k = a.register_module("k", torch::nn::Linear(dim, dim));
    a.v = a.register_module("v", torch::nn::Linear(dim, dim));
    a.o = a.register_module("o", torch::nn::Linear(dim, dim));
    a.norm_q = a.register_module("norm_q", WanRMSNorm(dim, eps));
    a.norm_k = a.register_module("norm_k", WanRMSNorm(dim, eps));
}
}  // namespace

torch::Tensor sinusoidal_embedding_1d(int64_t dim, const torch::Tensor& t) {
    const int64_t half = dim / 2;
    auto pos = t.to(torch::kFloat64);
    auto freqs = torch::pow(10000.0, -torch::arange(half, pos.options()) / static_cast<double>(half));
    auto s = torch::outer(pos, freqs);                            // [B, half]
    return torch::cat({torch::cos(s), torch::sin(s)}, 1).to(torch::kFloat32);  // [B, dim]
}

// ---------------------------------------------------------------------------------------------------------
WanRMSNormImpl::WanRMSNormImpl(int64_t dim, double eps) : eps_(eps) {
    weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor WanRMSNormImpl::forward(const torch::Tensor& x, bool lean) {
    if (lean) return at::rms_norm(x, {x.size(-1)}, weight.to(x.scalar_type()), eps_);
    // x * rsqrt(mean(x^2) + eps) in fp32 (one fused op), rounded to x's dtype, then * weight.
    auto n = at::rms_norm(x.to(torch::kFloat32), {x.size(-1)}, std::nullopt, eps_);
    return n.to(x.scalar_type()) * weight;  // bf16 * fp32 weight promotes to fp32, as in the official code
}

// ---------------------------------------------------------------------------------------------------------
WanSelfAttentionImpl::WanSelfAttentionImpl(int64_t dim, int64_t heads, double eps) : num_heads(heads) {
    register_attention_projections(*this, dim, eps);
    core_ = std::make_shared<SoftmaxAttentionImpl>();
}

void WanSelfAttentionImpl::set_core(AttentionCore core) {
    SURGEON_ASSERT(core != nullptr);
    // Cores with parameters are registered as `attn` (their parameters load/save with the block).
    if (!core->parameters().empty() || !core->buffers().empty()) {
        if (named_children().contains("attn"))
            replace_module("attn", core);
        else
            register_module("attn", core);
    } else if (named_children().contains("attn")) {
        unregister_module("attn");
    }
    core_ = std::move(core);
}

torch::Tensor WanSelfAttentionImpl::forward(const torch::Tensor& x, const TokenGrid& grid, const RopeTables& rope,
                                            const ForwardContext& ctx, const std::string& name) {
    const int64_t B = x.size(0), L = x.size(1), C = x.size(2), H = num_heads, D = C / H;
    const bool lean = ctx.stream != torch::kFloat32;
    auto qn = norm_q->forward(linear(q, x, ctx.compute), lean).view({B, L, H, D});  // [B, L, H, D]
    auto kn = norm_k->forward(linear(k, x, ctx.compute), lean).view({B, L, H, D});  // [B, L, H, D]
    auto vv = linear(v, x, ctx.compute).view({B, L, H, D});          // [B, L, H, D]
    auto qr = rope_apply(qn, rope, ctx.impl).to(ctx.compute);       // [B, L, H, D]
    auto kr = rope_apply(kn, rope, ctx.impl).to(ctx.compute);       // [B, L, H, D]
    ctx.observe(name + ".q", qr);
    ctx.observe(name + ".k", kr);
    ctx.observe(name + ".v", vv);
    auto y = core_->forward(qr, kr, vv, grid);  // [B, L, H, D]
    ctx.observe(name + ".attn", y);
    return linear(o, y.flatten(2), ctx.compute);  // [B, L, C]
}

// ---------------------------------------------------------------------------------------------------------
WanCrossAttentionImpl::WanCrossAttentionImpl(int64_t dim, int64_t heads, double eps) : num_heads(heads) {
    register_attention_projections(*this, dim, eps);
}

torch::Tensor WanCrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context,
                                             const ForwardContext& ctx) {
    const int64_t B = x.size(0), L = x.size(1), C = x.size(2), H = num_heads, D = C / H, Lt = context.size(1);
    const bool lean = ctx.stream != torch::kFloat32;
    auto qq = norm_q->forward(linear(q, x, ctx.compute), lean).view({B, L, H, D}).to(ctx.compute);  // [B, L, H, D]
    auto kk = norm_k->forward(linear(k, context, ctx.compute), lean).view({B, Lt, H, D}).to(ctx.compute);
    auto vv = linear(v, context, ctx.compute).view({B, Lt, H, D});                           // [B, Lt, H, D]
    auto y = softmax_attention(qq, kk, vv, ctx.impl);                                        // [B, L, H, D]
    return linear(o, y.flatten(2), ctx.compute);                                             // [B, L, C]
}

// ---------------------------------------------------------------------------------------------------------
WanAttentionBlockImpl::WanAttentionBlockImpl(const WanConfig& cfg) : eps(cfg.eps) {
    const int64_t C = cfg.dim;
    modulation = register_parameter("modulation", torch::randn({1, 6, C}) / std::sqrt(static_cast<double>(C)));
    self_attn = register_module("self_attn", WanSelfAttention(C, cfg.num_heads, cfg.eps));
    norm3 = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(cfg.eps)));
    cross_attn = register_module("cross_attn", WanCrossAttention(C, cfg.num_heads, cfg.eps));
    ffn = register_module("ffn", torch::nn::Sequential(torch::nn::Linear(C, cfg.ffn_dim),
                                                       torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")),
                                                       torch::nn::Linear(cfg.ffn_dim, C)));
}

// ---------------------------------------------------------------------------------------------------------
// The fused bf16 inference path (ops/dit_ops.h): Wan's bf16 recipe, Fast implementation, no gradients, on CUDA
// (on the CPU only when the fusion setting asks for it: tests run the twins through this path). Same values as
// the composite path below up to fp32 summation order, and for `gelu` one bf16 rounding less (GELU applied to
// the fp32 accumulator in the GEMM epilogue). Each part can be switched off alone (SURGEON_DIT_FUSED).
namespace {
bool use_fused_block(const ForwardContext& ctx, const torch::Tensor& x, const ops::DitFusion& f) {
    return f.any() && ctx.impl == AttentionImpl::Fast && ctx.compute == torch::kBFloat16 &&
           ctx.stream == torch::kFloat32 && !torch::GradMode::is_enabled() && (x.is_cuda() || f.cpu);
}
AttentionImpl part(bool on) { return on ? AttentionImpl::Fast : AttentionImpl::Reference; }

// h [B, L, C] bf16 (normalised, modulated) -> [B, L, C] bf16 (o projection output).
torch::Tensor self_attention_fused(WanSelfAttentionImpl& a, const torch::Tensor& h, const TokenGrid& grid,
                                   const RopeTables& rope, const ForwardContext& ctx, const std::string& name,
                                   double eps, const ops::DitFusion& f) {
    const int64_t B = h.size(0), L = h.size(1), C = h.size(2), H = a.num_heads, D = C / H;
    // cuDNN reads head-major q/k without a copy; other cores and observers get contiguous [B, L, H, D].
    const bool observed = ctx.tap && *ctx.tap;
    const bool head_major = !observed && dynamic_cast<const SoftmaxAttentionImpl*>(a.core().get()) != nullptr;
    auto qr = ops::rms_norm_rope(linear(a.q, h, ctx.compute), a.norm_q->weight, rope.cos, rope.sin, H, eps, head_major,
                                 part(f.qk));  // [B, L, H, D] bf16
    auto kr = ops::rms_norm_rope(linear(a.k, h, ctx.compute), a.norm_k->weight, rope.cos, rope.sin, H, eps, head_major,
                                 part(f.qk));  // [B, L, H, D] bf16
    auto vv = linear(a.v, h, ctx.compute).view({B, L, H, D});  // [B, L, H, D]
    ctx.observe(name + ".q", qr);
    ctx.observe(name + ".k", kr);
    ctx.observe(name + ".v", vv);
    auto y = a.core()->forward(qr, kr, vv, grid);  // [B, L, H, D]
    ctx.observe(name + ".attn", y);
    return linear(a.o, y.flatten(2), ctx.compute);  // [B, L, C]
}

// xn [B, L, C] bf16 (norm3 output), context [B, Lt, C] -> [B, L, C] bf16.
torch::Tensor cross_attention_fused(WanCrossAttentionImpl& a, const torch::Tensor& xn, const torch::Tensor& context,
                                    const ForwardContext& ctx, double eps, const ops::DitFusion& f) {
    const int64_t B = xn.size(0), C = xn.size(2), H = a.num_heads, D = C / H, Lt = context.size(1);
    const torch::Tensor none;
    auto qq = ops::rms_norm_rope(linear(a.q, xn, ctx.compute), a.norm_q->weight, none, none, H, eps, true, part(f.qk));
    auto kk = ops::rms_norm_rope(linear(a.k, context, ctx.compute), a.norm_k->weight, none, none, H, eps, true,
                                 part(f.qk));                                  // [B, Lt, H, D]
    auto vv = linear(a.v, context, ctx.compute).view({B, Lt, H, D});         // [B, Lt, H, D]
    auto y = softmax_attention(qq, kk, vv, AttentionImpl::Fast);             // [B, L, H, D]
    return linear(a.o, y.flatten(2), ctx.compute);                           // [B, L, C]
}

torch::Tensor block_forward_fused(WanAttentionBlockImpl& blk, const torch::Tensor& x_in, const torch::Tensor& e0,
                                  const torch::Tensor& context, const TokenGrid& grid, const RopeTables& rope,
                                  const ForwardContext& ctx, const std::string& name, const ops::DitFusion& f) {
    const torch::Tensor none;
    const double eps = blk.eps;
    auto e = (blk.modulation + e0).to(torch::kFloat32);         // [B, 6, C]: shift, scale, gate (x2), ffn gate
    auto m = [&](int64_t i) { return e.select(1, i); };         // [B, C]
    // LN(x) * (1 + scale) + shift -> bf16 q/k/v input.
    auto h = ops::norm_modulate(x_in, none, none, none, none, m(1), m(0), eps, part(f.norm)).h;
    auto y = self_attention_fused(*blk.self_attn, h, grid, rope, ctx, name + ".self_attn", eps, f);
    ctx.observe(name + ".self_attn", y);
    // x1 = x + gate * y and norm3(x1) -> bf16 cross-attention input, one pass.
    auto r1 = ops::norm_modulate(x_in, y, m(2), blk.norm3->weight, blk.norm3->bias, none, none, eps, part(f.norm));
    auto c = cross_attention_fused(*blk.cross_attn, r1.h, context, ctx, eps, f);
    ctx.observe(name + ".cross_attn", c);
    // x2 = x1 + c and LN(x2) * (1 + scale) + shift -> bf16 FFN input, one pass.
    auto r2 = ops::norm_modulate(r1.x, c, none, none, none, m(4), m(3), eps, part(f.norm));
    auto l0 = seq_linear(blk.ffn, 0), l2 = seq_linear(blk.ffn, 2);
    auto g = ops::linear_gelu_tanh(r2.h, l0->weight.to(ctx.compute), l0->bias.to(ctx.compute), part(f.gelu));
    auto out = linear(l2, g, ctx.compute);  // [B, L, C]
    ctx.observe(name + ".ffn", out);
    auto x = torch::addcmul(r2.x, out, m(5).unsqueeze(1));  // fp32 residual stream
    ctx.observe(name, x);
    return x;
}
}  // namespace

torch::Tensor WanAttentionBlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& e0,
                                             const torch::Tensor& context, const TokenGrid& grid,
                                             const RopeTables& rope, const ForwardContext& ctx, int64_t layer) {
    const std::string name = "blocks." + std::to_string(layer);
    ctx.observe(name + ".input", x_in);
    const auto fusion = ops::dit_fusion();
    if (use_fused_block(ctx, x_in, fusion)) return block_forward_fused(*this, x_in, e0, context, grid, rope, ctx, name, fusion);
    const auto S = ctx.stream;                          // fp32 (Wan's recipe) or bf16 (lean)
    auto e = (modulation + e0).to(S).chunk(6, 1);  // 6 x [B, 1, C]
    // Self-attention with adaLN modulation.
    // Modulation and gates as single fused ops: norm * (1 + scale) + shift, x + y * gate (fp32).
    auto y = self_attn(torch::addcmul(e[0], layer_norm(x_in, eps, S), 1 + e[1]), grid, rope, ctx,
                       name + ".self_attn");  // [B, L, C]
    ctx.observe(name + ".self_attn", y);
    auto x = torch::addcmul(x_in, y, e[2]);  // dtype promotion: fp32 from here on in Wan's recipe, bf16 in lean
    // Cross-attention on the affine-normalised stream, no modulation, no gate.
    auto xn = S == torch::kFloat32
                  ? F::layer_norm(x.to(torch::kFloat32),
                                  F::LayerNormFuncOptions({x.size(-1)}).weight(norm3->weight).bias(norm3->bias).eps(eps))
                        .to(x.scalar_type())
                  : F::layer_norm(x, F::LayerNormFuncOptions({x.size(-1)})
                                         .weight(norm3->weight.to(S))
                                         .bias(norm3->bias.to(S))
                                         .eps(eps));
    auto c = cross_attn(xn, context, ctx);  // [B, L, C]
    ctx.observe(name + ".cross_attn", c);
    x = x + c;
    // FFN with adaLN modulation.
    auto h = torch::addcmul(e[3], layer_norm(x, eps, S), 1 + e[4]);
    auto f = linear(seq_linear(ffn, 2), gelu_tanh(linear(seq_linear(ffn, 0), h, ctx.compute)), ctx.compute);
    ctx.observe(name + ".ffn", f);
    x = torch::addcmul(x, f, e[5]);
    ctx.observe(name, x);
    return x;
}

// ---------------------------------------------------------------------------------------------------------
WanHeadImpl::WanHeadImpl(const WanConfig& cfg) : eps(cfg.eps) {
    const int64_t C = cfg.dim;
    modulation = register_parameter("modulation", torch::randn({1, 2, C}) / std::sqrt(static_cast<double>(C)));
    head = register_module("head", torch::nn::Linear(C, cfg.out_dim * cfg.patch_volume()));
}

torch::Tensor WanHeadImpl::forward(const torch::Tensor& x, const torch::Tensor& e) {
    auto m = (modulation + e.unsqueeze(1)).chunk(2, 1);  // shift, scale: [B, 1, C], fp32
    auto h = torch::addcmul(m[0], layer_norm(x.to(torch::kFloat32), eps, torch::kFloat32), 1 + m[1]);
    return linear(head, h, torch::kFloat32);  // the head runs in fp32 in both precisions
}

// ---------------------------------------------------------------------------------------------------------
WanModelImpl::WanModelImpl(const WanConfig& cfg) : cfg_(cfg) {
    cfg_.validate();
    const int64_t C = cfg.dim;
    auto ps = cfg.patch_size;
    patch_embedding = register_module(
        "patch_embedding",
        torch::nn::Conv3d(torch::nn::Conv3dOptions(cfg.in_dim, C, {ps[0], ps[1], ps[2]}).stride({ps[0], ps[1], ps[2]})));
    text_embedding = register_module(
        "text_embedding",
        torch::nn::Sequential(torch::nn::Linear(cfg.text_dim, C),
                              torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")), torch::nn::Linear(C, C)));
    time_embedding = register_module(
        "time_embedding", torch::nn::Sequential(torch::nn::Linear(cfg.freq_dim, C), torch::nn::SiLU(), torch::nn::Linear(C, C)));
    time_projection = register_module("time_projection", torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(C, 6 * C)));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.num_layers; ++i) blocks->push_back(WanAttentionBlock(cfg));
    head = register_module("head", WanHead(cfg));
}

void WanModelImpl::set_precision(Precision p, bool cast_weights) {
    precision_ = p;
    if (p != Precision::Float32 && cast_weights) {
        torch::NoGradGuard ng;
        // Store GEMM weights in bf16 (autocast would cast them per op to the same values).
        auto cast = [](torch::nn::Module& m) {
            for (auto& t : m.parameters()) t.set_data(t.data().to(torch::kBFloat16));
        };
        cast(*patch_embedding);
        for (size_t i : {0, 2}) cast(*text_embedding->ptr(i));
        for (int64_t i = 0; i < cfg_.num_layers; ++i) {
            auto b = block(i);
            for (auto* l : {&b->self_attn->q, &b->self_attn->k, &b->self_attn->v, &b->self_attn->o, &b->cross_attn->q,
                            &b->cross_attn->k, &b->cross_attn->v, &b->cross_attn->o})
                cast(**l);
            for (size_t j : {0, 2}) cast(*b->ffn->ptr(j));
        }
    }
}

void WanModelImpl::set_attention_impl(AttentionImpl impl) {
    impl_ = impl;
    for (int64_t i = 0; i < cfg_.num_layers; ++i) block(i)->self_attn->core()->set_impl(impl);
}

torch::Device WanModelImpl::device() const { return head->head->weight.device(); }

TokenGrid WanModelImpl::grid_for(const torch::Tensor& x) const {
    return token_grid(cfg_, x.size(2), x.size(3), x.size(4));
}

void WanModelImpl::check_inputs(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context) const {
    check_shape("latents", x, {-1, cfg_.in_dim, -1, -1, -1});
    const auto& p = cfg_.patch_size;
    for (int i = 0; i < 3; ++i)
        SURGEON_CHECK(x.size(2 + i) > 0 && x.size(2 + i) % p[i] == 0,
                      "tensor 'latents': size {} of dim {} is not a positive multiple of the patch size {}",
                      x.size(2 + i), 2 + i, p[i]);
    // Bounds from the model before any work: Wan's RoPE table has 1024 positions per axis (rope_params(1024, d)).
    const TokenGrid g = grid_for(x);
    SURGEON_CHECK(g.frames <= 1024 && g.height <= 1024 && g.width <= 1024,
                  "tensor 'latents': {} is a token grid of {}x{}x{} (patch size {}x{}x{}); RoPE has 1024 positions per axis",
                  shape_str(x.sizes()), g.frames, g.height, g.width, p[0], p[1], p[2]);
    check_token_grid(g, "tensor 'latents'");
    const int64_t B = x.size(0);
    SURGEON_CHECK(B > 0 && B <= 4096, "tensor 'latents': batch of {} (expected 1..4096)", B);
    SURGEON_CHECK(t.dim() <= 1 && (t.numel() == B || t.numel() == 1),
                  "tensor 'timestep': expected shape [{}] (one per sample), got {}", B, shape_str(t.sizes()));
    check_shape("context", context, {B, -1, cfg_.text_dim});
    SURGEON_CHECK(context.size(1) >= 1 && context.size(1) <= cfg_.text_len,
                  "tensor 'context': {} text tokens, expected 1..{} (text_len)", context.size(1), cfg_.text_len);
    if (!finite_checks_) return;
    check_finite("latents", x);
    check_finite("timestep", t);
    check_finite("context", context);
}

torch::Tensor WanModelImpl::forward(const torch::Tensor& x_in, const torch::Tensor& t_in,
                                    const torch::Tensor& context_in, const ActivationTap* tap) {
    check_inputs(x_in, t_in, context_in);
    ForwardContext ctx;
    ctx.compute = precision_ == Precision::Float32 ? torch::kFloat32 : torch::kBFloat16;
    ctx.stream = precision_ == Precision::BFloat16Lean ? torch::kBFloat16 : torch::kFloat32;
    ctx.impl = impl_;
    ctx.tap = tap;
    const auto dev = device();
    const int64_t B = x_in.size(0), C = cfg_.dim;
    auto x = x_in.to(dev, torch::kFloat32);
    auto t = t_in.to(dev).reshape({-1}).expand({B});

    // Patch embedding: [B, Cin, F, H, W] -> [B, C, F', H', W'] -> [B, L, C].
    auto w = patch_embedding->weight, b = patch_embedding->bias;
    auto pe = F::conv3d(x.to(ctx.compute), w.to(ctx.compute),
                        F::Conv3dFuncOptions().bias(b.to(ctx.compute)).stride(patch_embedding->options.stride()));
    ctx.observe("patch_embedding", pe);
    const TokenGrid grid{pe.size(2), pe.size(3), pe.size(4)};
    auto h = pe.flatten(2).transpose(1, 2);  // [B, L, C]

    // Time embedding and projection, fp32.
    auto e = time_embedding->forward(sinusoidal_embedding_1d(cfg_.freq_dim, t).to(dev));  // [B, C]
    auto e0 = time_projection->forward(e);                                               // [B, 6C]
    ctx.observe("time_embedding", e);
    ctx.observe("time_projection", e0);
    e0 = e0.unflatten(1, {6, C});  // [B, 6, C]

    // Text embedding of the context zero-padded to text_len (the padded rows are not masked, as in Wan).
    auto context = context_in.to(dev, torch::kFloat32);
    if (cfg_.pad_context && context.size(1) < cfg_.text_len)
        context = torch::cat({context, context.new_zeros({B, cfg_.text_len - context.size(1), cfg_.text_dim})}, 1);
    auto ctx_emb = linear(seq_linear(text_embedding, 2),
                          gelu_tanh(linear(seq_linear(text_embedding, 0), context, ctx.compute)), ctx.compute);
    ctx.observe("text_embedding", ctx_emb);  // [B, text_len, C]

    const auto rope = rope_tables(cfg_.head_dim(), grid,
                                  impl_ == AttentionImpl::Fast && dev.is_cuda() ? torch::kFloat32 : torch::kFloat64, dev);
    for (int64_t i = 0; i < cfg_.num_layers; ++i) h = block(i)->forward(h, e0, ctx_emb, grid, rope, ctx, i);

    auto out = head->forward(h, e);  // [B, L, P*Cout]
    ctx.observe("head", out);
    // Unpatchify: [B, F', H', W', p0, p1, p2, Cout] -> [B, Cout, F'*p0, H'*p1, W'*p2].
    const auto& p = cfg_.patch_size;
    const int64_t co = cfg_.out_dim;
    out = out.view({B, grid.frames, grid.height, grid.width, p[0], p[1], p[2], co});
    out = out.permute({0, 7, 1, 4, 2, 5, 3, 6});
    return out.reshape({B, co, grid.frames * p[0], grid.height * p[1], grid.width * p[2]});
}

}  // namespace surgeon
