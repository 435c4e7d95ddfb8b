// Test helpers.
#include "testing/testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"

namespace surgeon::testing {
namespace fs = std::filesystem;

std::string golden(const std::string& rel) { return std::string(SURGEON_GOLDEN_DIR) + "/" + rel; }

double rel_error(const torch::Tensor& a, const torch::Tensor& b) {
    auto ad = a.detach().to(torch::kCPU, torch::kFloat64), bd = b.detach().to(torch::kCPU, torch::kFloat64);
    EXPECT_EQ(ad.sizes(), bd.sizes());
    if (ad.sizes() != bd.sizes()) return 1e30;
    const double den = bd.norm().item<double>();
    const double num = (ad - bd).norm().item<double>();
    if (std::isnan(num)) return 1e30;
    return den > 0 ? num / den : num;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::vector<double> read_losses(const std::string& dir) {
    std::ifstream in(dir + "/loss.csv");
    std::string line;
    std::getline(in, line);  // header: step,loss,...
    std::vector<double> l;
    while (std::getline(in, line)) l.push_back(std::stod(line.substr(line.find(',') + 1)));
    return l;
}

std::string temp_dir(const std::string& tag) {
    auto base = fs::temp_directory_path() / ("surgeon_test_" + tag + "_" + std::to_string(::getpid()));
    remove_tree(base.string());  // not fs::remove_all: it crashes in libtorch processes on the GPU machine
    fs::create_directories(base);
    return base.string();
}

CommandResult run_surgeon(const std::string& args) {
    CommandResult r;
    const auto dir = temp_dir("cmd");
    const std::string out = dir + "/stdout", err = dir + "/stderr";
    const std::string cmd = std::string(SURGEON_BINARY) + " " + args + " >" + out + " 2>" + err + " </dev/null";
    int status = std::system(cmd.c_str());
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    auto slurp = [](const std::string& p) {
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

}  // namespace surgeon::testing
