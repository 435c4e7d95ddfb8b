// `surgeon compare A KEY_A B KEY_B`: relative error ||a-b||/||b|| and max |a-b| between two stored tensors.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/tensor_checks.h"

namespace surgeon::cli {

void register_compare(CLI::App& app) {
    struct Args {
        std::string a, ka, b, kb;
        double tol = -1;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("compare", "Relative error between two tensors stored in safetensors files");
    cmd->add_option("file_a", a->a)->required();
    cmd->add_option("key_a", a->ka)->required();
    cmd->add_option("file_b", a->b, "reference file")->required();
    cmd->add_option("key_b", a->kb, "reference tensor")->required();
    cmd->add_option("--max-rel-error", a->tol, "exit 1 if the relative error exceeds this");
    cmd->callback([a]() {
        auto ta = require_tensor(load_safetensors(a->a), a->ka, a->a).to(torch::kFloat64);
        auto tb = require_tensor(load_safetensors(a->b), a->kb, a->b).to(torch::kFloat64);
        SURGEON_CHECK(ta.sizes() == tb.sizes(), "shapes differ: {} vs {}", shape_str(ta.sizes()), shape_str(tb.sizes()));
        const double rel = ((ta - tb).norm() / tb.norm()).item<double>();
        const double mx = (ta - tb).abs().max().item<double>();
        std::printf("%s[%s] vs %s[%s]: shape %s, relative error %.3e, max abs diff %.3e\n", a->a.c_str(), a->ka.c_str(),
                    a->b.c_str(), a->kb.c_str(), shape_str(ta.sizes()).c_str(), rel, mx);
        SURGEON_CHECK(a->tol < 0 || rel <= a->tol, "relative error {:.3e} exceeds {:.3e}", rel, a->tol);
    });
}

}  // namespace surgeon::cli
