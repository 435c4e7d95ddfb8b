// FlatAdamW (the fast path) against torch::optim::AdamW (its slow twin): same parameters, moments and clipped
// gradients over several steps with changing learning rates, on awkward shapes, with and without weight decay.
#include "pipelines/flat_adamw.h"
#include "testing/testing.h"

using namespace surgeon;

namespace {
std::vector<torch::Tensor> make_params(const std::vector<std::vector<int64_t>>& shapes, uint64_t seed) {
    torch::manual_seed(seed);
    std::vector<torch::Tensor> ps;
    for (const auto& s : shapes) ps.push_back(torch::randn(s).requires_grad_(true));
    return ps;
}
}  // namespace

TEST(FlatAdamW, MatchesTorchAdamWOverSteps) {
    const std::vector<std::vector<int64_t>> dshapes{{3, 5}, {2, 3, 4}, {1, 1}, {17, 1}};
    const std::vector<std::vector<int64_t>> nshapes{{7}, {1}, {33}};
    auto da = make_params(dshapes, 1), na = make_params(nshapes, 2);
    auto db = make_params(dshapes, 1), nb = make_params(nshapes, 2);
    const double b1 = 0.9, b2 = 0.99, wd = 0.05;
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(da, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(1e-3).betas({b1, b2}).weight_decay(wd)));
    groups.emplace_back(na, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(1e-3).betas({b1, b2}).weight_decay(0)));
    torch::optim::AdamW ref(std::move(groups));
    FlatAdamW fast(db, nb, FlatAdamWOptions{b1, b2, 1e-8, wd});
    std::vector<torch::Tensor> all_a = da, all_b = fast.params();
    all_a.insert(all_a.end(), na.begin(), na.end());
    ASSERT_EQ(all_a.size(), all_b.size());
    for (int step = 0; step < 6; ++step) {
        const double lr = 1e-2 * (1 + step) / 3.0;
        for (auto& g : ref.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
        torch::manual_seed(100 + step);
        ref.zero_grad();
        fast.zero_grad();
        for (size_t i = 0; i < all_a.size(); ++i) {
            auto g = torch::randn(all_a[i].sizes()) * (step == 3 ? 50.0 : 1.0);  // step 3: clipping active
            all_a[i].mutable_grad() = g.clone();
            all_b[i].grad().copy_(g);  // the flat path keeps its gradient views
        }
        const double na_ = torch::nn::utils::clip_grad_norm_(all_a, 1.0);
        const double nb_ = fast.clip_grad_norm(1.0).item<double>();
        EXPECT_NEAR(na_, nb_, 1e-5 * na_) << "step " << step;
        ref.step();
        fast.step(lr);
        for (size_t i = 0; i < all_a.size(); ++i) {
            EXPECT_LE((all_a[i] - all_b[i]).abs().max().item<double>(), 1e-6) << "param " << i << " step " << step;
            auto& st = static_cast<torch::optim::AdamWParamState&>(*ref.state().at(all_a[i].unsafeGetTensorImpl()));
            EXPECT_LE((st.exp_avg() - fast.exp_avg_of(i)).abs().max().item<double>(), 1e-6);
            EXPECT_LE((st.exp_avg_sq() - fast.exp_avg_sq_of(i)).abs().max().item<double>(), 1e-6);
        }
    }
    EXPECT_EQ(fast.steps(), 6);
    // The parameters alias the flat buffer: writing through one is seen by the other.
    torch::NoGradGuard ng;
    fast.flat_data().fill_(0.5);
    for (const auto& p : fast.params()) EXPECT_TRUE(torch::all(p == 0.5).item<bool>());
}

TEST(FlatAdamW, RejectsMixedDtypes) {
    auto a = torch::randn({3}).requires_grad_(true), b = torch::randn({3}, torch::kFloat64).requires_grad_(true);
    auto err = surgeon::testing::error_of([&] { FlatAdamW f({a}, {b}, {}); });
    EXPECT_NE(err.find("parameter 1"), std::string::npos) << err;
}
