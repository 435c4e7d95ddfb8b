// Test helpers: golden paths, relative error, running the CLI. Tolerances live in tolerance.h.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "testing/tolerance.h"

namespace surgeon::testing {

// Path under shared/golden; the test is skipped (not passed) if the fixtures are absent.
std::string golden(const std::string& rel);
#define SURGEON_REQUIRE_GOLDEN(path)                                                        \
    do {                                                                                    \
        if (!std::filesystem::exists(path)) GTEST_SKIP() << "golden fixture missing: " << path; \
    } while (0)

// ||a - b|| / ||b|| in float64.
double rel_error(const torch::Tensor& a, const torch::Tensor& b);

struct CommandResult {
    int exit_code = -1;
    std::string out, err;
};
// Runs the `surgeon` binary with `args` (a shell-quoted string), capturing stdout and stderr.
CommandResult run_surgeon(const std::string& args);
// The message of the surgeon::Error that `f` throws, or "" if it throws none.
std::string error_of(const std::function<void()>& f);
// A fresh empty temporary folder for one test.
std::string temp_dir(const std::string& tag);
// The loss column of a training run's `<dir>/loss.csv` (one value per log window).
std::vector<double> read_losses(const std::string& dir);

}  // namespace surgeon::testing
