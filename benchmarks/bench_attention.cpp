// bench_attention: time every self-attention kind's Fast path (inference: no grad) at Wan2.1-1.3B shapes (B=1,
// 12 heads x 128, bf16, CUDA; --size 480p = grid 21x30x52 = 32,760 tokens, 720p = 21x45x80 = 75,600) against cuDNN full
// softmax (at::scaled_dot_product_attention) measured in the same run, after checking each against the Reference twin
// on slices of queries. Prints a markdown table (median of N, CUDA events); --json FILE also writes one row per kind:
// commit, GPU, shape, median ms, TFLOP/s (cost model), ratio to cuDNN, target 1.1*f*cuDNN + 0.3 ms (f = softmax-key
// fraction) and pass/fail.
// Run: build/benchmarks/bench_attention [--size 480p|720p] [--iters 20] [--warmup 5] [--grid F,H,W] [--backward]
//      [--json FILE]   (commit: $SURGEON_GIT_COMMIT, else the configure-time git hash)
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#ifdef SURGEON_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#endif

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
    std::string json, size = "480p";
};

#ifndef SURGEON_GIT_COMMIT
#define SURGEON_GIT_COMMIT "unknown"
#endif
std::string commit() {
    const char* e = std::getenv("SURGEON_GIT_COMMIT");
    return e && *e ? e : SURGEON_GIT_COMMIT;
}
std::string gpu_name() {
#ifdef SURGEON_HAVE_CUDA
    return at::cuda::getCurrentDeviceProperties()->name;
#else
    return "unknown";
#endif
}

double median_ms(const std::function<void()>& fn, const Options& o) {
    for (int i = 0; i < o.warmup; ++i) fn();
    torch::cuda::synchronize();
    std::vector<double> ms;
    for (int i = 0; i < o.iters; ++i) {
#ifdef SURGEON_HAVE_CUDA
        at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);  // timing enabled
        start.record();
        fn();
        stop.record();
        stop.synchronize();
        ms.push_back(start.elapsed_time(stop));
#else
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        torch::cuda::synchronize();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
#endif
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
    for (auto st : {Stabilizer::Lse, Stabilizer::Max}) {  // overlap (first chunk's window is cut; batched groups)
        PlanEntry e;
        e.kind = AttentionKind::Chunked;
        e.chunk = 3;
        e.overlap = 1;
        e.stabilizer = st;
        out.push_back({std::string("chunked Tc=3 To=1 ") + to_string(st), e});
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
        auto ref = hybrid_attention_reference(q, k, v, pq, pk, core.entry(), o.grid, 256, begin, n, core.linear_log_scale);
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
        else if (arg("--json")) o.json = argv[++i];
        else if (arg("--size")) {
            o.size = argv[++i];
            if (o.size == "480p") o.grid = {21, 30, 52};
            else if (o.size == "720p") o.grid = {21, 45, 80};
            else {
                std::fprintf(stderr, "error: --size expects 480p or 720p\n");
                return 2;
            }
        }
        else if (arg("--grid")) {
            long long f, h, w;
            if (std::sscanf(argv[++i], "%lld,%lld,%lld", &f, &h, &w) != 3) {
                std::fprintf(stderr, "error: --grid expects F,H,W (e.g. 21,30,52)\n");
                return 2;
            }
            o.grid = {f, h, w};
        } else if (std::strcmp(argv[i], "--backward") == 0) o.backward = true;
        else {
            std::fprintf(stderr, "usage: %s [--size 480p|720p] [--iters N] [--warmup N] [--grid F,H,W] [--check-queries N] "
                         "[--backward] [--json FILE]\n",
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
                "median of %d (warm-up %d)%s; %s, commit %s\n\n",
                TORCH_VERSION, (long long)H, (long long)D, (long long)o.grid.frames, (long long)o.grid.height,
                (long long)o.grid.width, (long long)N, o.iters, o.warmup, o.backward ? ", forward+backward" : "",
                gpu_name().c_str(), commit().c_str());
    torch::manual_seed(0);
    auto opt = torch::TensorOptions().dtype(torch::kBFloat16).device(dev);
    // RMS-normed q, k (|x| ~ sqrt(D)), as the core sees them after norm + RoPE.
    auto q = torch::randn({1, N, H, D}, opt), k = torch::randn({1, N, H, D}, opt), v = torch::randn({1, N, H, D}, opt);

    std::printf("| kind | fwd ms | ratio vs softmax | TFLOP/s | target ms (1.1 f cuDNN + 0.3) | attention FLOPs %% | %s"
                "check rel err (bf16 vs fp32 ref) |\n",
                o.backward ? "fwd+bwd ms | " : "");
    std::printf("|---|---|---|---|---|---|%s---|\n", o.backward ? "---|" : "");
    std::vector<std::string> json_rows;
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
            const double f = static_cast<double>(softmax_pairs(c.entry.normalized(D), o.grid)) /
                             (static_cast<double>(N) * static_cast<double>(N));  // softmax-key fraction
            const double target = 1.1 * f * softmax_ms + 0.3, tflops = flops / (fwd * 1e-3) / 1e12;
            const bool is_teacher = c.entry.kind == AttentionKind::Softmax;
            const std::string verdict = is_teacher ? "-" : (fwd <= target ? "pass" : "FAIL");
            std::printf("| %s | %.3f | %.3f | %.0f | %s | %.1f | %s%s |\n", c.name.c_str(), fwd,
                        softmax_ms > 0 ? fwd / softmax_ms : 1.0, tflops,
                        is_teacher ? "-" : (std::to_string(target).substr(0, 6) + " " + verdict).c_str(),
                        100.0 * flops / teacher, bwd.c_str(), check.c_str());
            char row[1024];
            std::snprintf(row, sizeof row,
                          "{\"bench\": \"attention\", \"commit\": \"%s\", \"gpu\": \"%s\", \"size\": \"%s\", "
                          "\"grid\": [%lld, %lld, %lld], \"tokens\": %lld, \"heads\": %lld, \"head_dim\": %lld, "
                          "\"dtype\": \"bf16\", \"kind\": \"%s\", \"median_ms\": %.4f, \"iters\": %d, "
                          "\"tflops\": %.2f, \"attention_flops\": %.6g, \"softmax_key_fraction\": %.6f, "
                          "\"cudnn_full_ms\": %.4f, \"ratio_to_cudnn\": %.4f, \"target_ms\": %.4f, \"pass\": %s, "
                          "\"check_rel_err\": \"%s\"}",
                          commit().c_str(), gpu_name().c_str(), o.size.c_str(), (long long)o.grid.frames,
                          (long long)o.grid.height, (long long)o.grid.width, (long long)N, (long long)H, (long long)D,
                          c.name.c_str(), fwd, o.iters, tflops, flops, f, softmax_ms,
                          softmax_ms > 0 ? fwd / softmax_ms : 1.0, is_teacher ? softmax_ms : target,
                          is_teacher ? "null" : (fwd <= target ? "true" : "false"), check.c_str());
            json_rows.push_back(row);
        } catch (const std::exception& e) {
            std::string msg = e.what();
            msg = msg.substr(0, msg.find('\n'));
            std::printf("| %s | error: %s |\n", c.name.c_str(), msg.c_str());
        }
        std::fflush(stdout);
    }
    if (!o.json.empty()) {
        FILE* fp = std::fopen(o.json.c_str(), "w");
        if (!fp) {
            std::fprintf(stderr, "error: cannot write %s\n", o.json.c_str());
            return 1;
        }
        std::fprintf(fp, "[\n");
        for (size_t i = 0; i < json_rows.size(); ++i)
            std::fprintf(fp, "  %s%s\n", json_rows[i].c_str(), i + 1 < json_rows.size() ? "," : "");
        std::fprintf(fp, "]\n");
        std::fclose(fp);
        std::printf("\nwrote %zu rows to %s\n", json_rows.size(), o.json.c_str());
    }
    return 0;
}
