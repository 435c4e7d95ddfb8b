// bench_attention: time every self-attention kind's Fast path at Wan2.1-1.3B 480p shapes (B=1, 12 heads x 128,
// grid 21x30x52 = 32,760 tokens, bf16, CUDA) against cuDNN/Flash full softmax (at::scaled_dot_product_attention),
// after checking each against the Reference twin on slices of queries. Prints a markdown table (median of N).
// Run: build-*/benchmarks/bench_attention [--iters 20] [--warmup 5] [--grid 21,30,52] [--backward]
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "attention/cost_model.h"
#include "attention/hybrid_attention.h"
#include "attention/softmax_attention.h"

using namespace surgeon;

namespace {

struct Options {
    int iters = 20, warmup = 5;
    TokenGrid grid{21, 30, 52};
    int64_t heads = 12, head_dim = 128;
    bool backward = false;
    int64_t check_queries = 512;
};

double median_ms(const std::function<void()>& fn, const Options& o) {
    for (int i = 0; i < o.warmup; ++i) fn();
    torch::cuda::synchronize();
    std::vector<double> ms;
    for (int i = 0; i < o.iters; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        torch::cuda::synchronize();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

struct Case {
    std::string name;
    PlanEntry entry;
};

std::vector<Case> cases() {
    std::vector<Case> out;
    out.push_back({"softmax (SDPA)", PlanEntry{}});
    for (auto st : {Stabilizer::Lse, Stabilizer::Max})
        for (int64_t R : {2, 4, 8}) {
            PlanEntry e;
            e.kind = AttentionKind::Hybrid;
            e.rate = R;
            e.stabilizer = st;
            out.push_back({"hybrid R=" + std::to_string(R) + " " + to_string(st), e});
        }
    PlanEntry lin;
    lin.kind = AttentionKind::Linear;
    out.push_back({"linear", lin});
    for (bool causal : {false, true})
        for (int64_t Tc : {1, 3}) {
            PlanEntry e;
            e.kind = AttentionKind::Chunked;
            e.chunk = Tc;
            e.causal = causal;
            out.push_back({"chunked Tc=" + std::to_string(Tc) + (causal ? " causal" : ""), e});
        }
    return out;
}

// Fast output vs the Reference twin on two query slices (middle and end: chunk and stride boundaries).
double check_slice(HybridAttentionImpl& core, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                   const Options& o) {
    torch::NoGradGuard ng;
    core.set_impl(AttentionImpl::Fast);
    auto fast = core.forward(q, k, v, o.grid);  // [B, N, H, D] bf16
    core.set_impl(AttentionImpl::Reference);
    auto [pq, pk] = core.features(q, k);  // float32 features from the same bf16 inputs
    const int64_t N = o.grid.tokens(), n = std::min(o.check_queries, N / 2);
    double worst = 0;
    for (int64_t begin : {N / 2 - n / 2, N - n}) {
        auto ref = hybrid_attention_reference(q, k, v, pq, pk, core.entry(), o.grid, 256, begin, n);
        auto f = fast.narrow(1, begin, n).to(torch::kFloat64);
        auto r = ref.to(torch::kFloat64);
        worst = std::max(worst, ((f - r).norm() / r.norm()).item<double>());
    }
    core.set_impl(AttentionImpl::Fast);
    return worst;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        auto arg = [&](const char* name) { return std::strcmp(argv[i], name) == 0 && i + 1 < argc; };
        if (arg("--iters")) o.iters = std::atoi(argv[++i]);
        else if (arg("--warmup")) o.warmup = std::atoi(argv[++i]);
        else if (arg("--check-queries")) o.check_queries = std::atoll(argv[++i]);
        else if (arg("--grid")) {
            long long f, h, w;
            if (std::sscanf(argv[++i], "%lld,%lld,%lld", &f, &h, &w) != 3) {
                std::fprintf(stderr, "error: --grid expects F,H,W (e.g. 21,30,52)\n");
                return 2;
            }
            o.grid = {f, h, w};
        } else if (std::strcmp(argv[i], "--backward") == 0) o.backward = true;
        else {
            std::fprintf(stderr, "usage: %s [--iters N] [--warmup N] [--grid F,H,W] [--check-queries N] [--backward]\n",
                         argv[0]);
            return 2;
        }
    }
    if (!torch::cuda::is_available()) {
        std::printf("bench_attention: CUDA is absent on this machine; nothing to time (run it on a GPU machine).\n");
        return 0;
    }
    const auto dev = torch::Device(torch::kCUDA);
    const int64_t N = o.grid.tokens(), H = o.heads, D = o.head_dim;
    std::printf("# bench_attention: torch %s, B=1, H=%lld, D=%lld, grid %lldx%lldx%lld = %lld tokens, bf16, "
                "median of %d (warm-up %d)%s\n\n",
                TORCH_VERSION, (long long)H, (long long)D, (long long)o.grid.frames, (long long)o.grid.height,
                (long long)o.grid.width, (long long)N, o.iters, o.warmup, o.backward ? ", forward+backward" : "");
    torch::manual_seed(0);
    auto opt = torch::TensorOptions().dtype(torch::kBFloat16).device(dev);
    // RMS-normed q, k (|x| ~ sqrt(D)), as the core sees them after norm + RoPE.
    auto q = torch::randn({1, N, H, D}, opt), k = torch::randn({1, N, H, D}, opt), v = torch::randn({1, N, H, D}, opt);

    std::printf("| kind | fwd ms | ratio vs softmax | attention FLOPs %% | %s check rel err (bf16 vs fp32 ref) |\n",
                o.backward ? "fwd+bwd ms | " : "");
    std::printf("|---|---|---|---|%s---|\n", o.backward ? "---|" : "");
    double softmax_ms = 0;
    const double teacher = teacher_attention_flops(H, D, o.grid);
    for (const auto& c : cases()) {
        std::shared_ptr<AttentionCoreImpl> core;
        std::shared_ptr<HybridAttentionImpl> hybrid;
        if (c.entry.kind == AttentionKind::Softmax) {
            core = std::make_shared<SoftmaxAttentionImpl>();
        } else {
            hybrid = std::make_shared<HybridAttentionImpl>(c.entry, H, D, 0);
            hybrid->to(dev);
            core = hybrid;
        }
        core->set_impl(AttentionImpl::Fast);
        std::string check = "-";
        try {
            if (hybrid) {
                const double err = check_slice(*hybrid, q, k, v, o);
                check = std::to_string(err) + (err <= 3e-2 ? " ok" : " FAIL");
            }
            const double fwd = median_ms(
                [&] {
                    torch::NoGradGuard ng;
                    core->forward(q, k, v, o.grid);
                },
                o);
            if (c.entry.kind == AttentionKind::Softmax) softmax_ms = fwd;
            std::string bwd;
            if (o.backward) {
                auto qg = q.clone().requires_grad_(true), kg = k.clone().requires_grad_(true);
                auto vg = v.clone().requires_grad_(true);
                const double fb = median_ms([&] { core->forward(qg, kg, vg, o.grid).sum().backward(); }, o);
                bwd = std::to_string(fb).substr(0, 7) + " | ";
            }
            const auto flops = block_attention_flops(c.entry.normalized(D), H, D, o.grid).total();
            std::printf("| %s | %.3f | %.3f | %.1f | %s%s |\n", c.name.c_str(), fwd,
                        softmax_ms > 0 ? fwd / softmax_ms : 1.0, 100.0 * flops / teacher, bwd.c_str(), check.c_str());
        } catch (const std::exception& e) {
            std::string msg = e.what();
            msg = msg.substr(0, msg.find('\n'));
            std::printf("| %s | error: %s |\n", c.name.c_str(), msg.c_str());
        }
        std::fflush(stdout);
    }
    return 0;
}
