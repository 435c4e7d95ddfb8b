// Kill -9 campaign for `surgeon train` at tiny size (issue 20): SIGKILL inside checkpoint writes (the N-th atomic
// file write, after its temporary file is written; the N-th folder swap, between moving the old checkpoint away
// and moving the new one in) and at seeded random times, then the same command with --resume. Every resumed run
// must equal the uninterrupted one bit for bit (model, checkpoint tensors, loss history without its wall times), and after every kill each file under
// its final name is complete (safetensors headers and data in bounds, JSON parses). scripts/kill_campaign.sh runs
// the same campaign on distill, finetune and surgery.
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/safetensors.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
namespace fs = std::filesystem;
using testing::run_surgeon;
using testing::temp_dir;

const std::string kTrain = "train --config " + std::string(SURGEON_SOURCE_DIR) +
                           "/configs/tiny-train.json --set batch=1 checkpoint_every=2 log_every=2 --steps 6 ";

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// What a finished run is judged by: model/ byte for byte, every tensor of checkpoint/state.safetensors, and the
// loss history; the history's last column (elapsed seconds, also in loss.csv) is wall time and left out.
std::map<std::string, std::string> result_of(const std::string& run) {
    std::map<std::string, std::string> m;
    for (const auto& e : fs::recursive_directory_iterator(run + "/model"))
        if (e.is_regular_file()) m[fs::relative(e.path(), run).string()] = slurp(e.path().string());
    for (auto& [name, t] : load_safetensors(run + "/checkpoint/state.safetensors")) {
        auto c = (name == "history" ? t.narrow(1, 0, t.size(1) - 1) : t).contiguous();
        m["state:" + name] = std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
    }
    std::istringstream csv(slurp(run + "/loss.csv"));
    for (std::string line; std::getline(csv, line);) m["loss.csv"] += line.substr(0, line.rfind(',')) + "\n";
    return m;
}

// After a kill: every file under a final name (not *.tmp*) is whole.
void expect_no_half_written_file(const std::string& run, const std::string& what) {
    if (!fs::exists(run)) return;
    for (const auto& e : fs::recursive_directory_iterator(run)) {
        const std::string p = e.path().string();
        if (!e.is_regular_file() || p.find(".tmp") != std::string::npos) continue;
        if (e.path().extension() == ".safetensors") {
            EXPECT_NO_THROW(load_safetensors(p)) << what << ": " << p;
        } else if (e.path().extension() == ".json") {
            EXPECT_NO_THROW(read_json_file(p)) << what << ": " << p;
        }
    }
}

int run_killed(const std::string& env, const std::string& args) {
    const std::string cmd = env + " " + SURGEON_BINARY + " " + args + " >/dev/null 2>&1";
    return std::system(cmd.c_str());
}

TEST(KillCampaign, TrainResumesBitForBitAfterSigkillDuringWritesAndAtRandomTimes) {
    const auto dir = temp_dir("kill_train");
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_surgeon(kTrain + "--out " + dir + "/full");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto full = result_of(dir + "/full");
    ASSERT_GT(full.size(), 4u);

    std::vector<std::pair<std::string, std::string>> kills;  // (env or timeout prefix, label)
    for (int n : {1, 2, 4, 7, 11, 16}) kills.push_back({"SURGEON_KILL_AT=write:" + std::to_string(n), "write " + std::to_string(n)});
    for (int n : {1, 2, 3}) kills.push_back({"SURGEON_KILL_AT=swap:" + std::to_string(n), "swap " + std::to_string(n)});
    std::mt19937 rng(20);
    for (int i = 0; i < 2; ++i) {
        const double at = std::uniform_real_distribution<double>(0.2, 0.9)(rng) * seconds;
        kills.push_back({"timeout -s KILL " + std::to_string(at), "after " + std::to_string(at) + " s"});
    }
    int k = 0;
    for (const auto& [prefix, label] : kills) {
        const std::string out = dir + "/k" + std::to_string(k++);
        const int status = run_killed(prefix, kTrain + "--out " + out);
        if (prefix.rfind("SURGEON_KILL_AT", 0) == 0)
            EXPECT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL))
                << label << ": the kill point was never reached (status " << status << ")";
        expect_no_half_written_file(out, label);
        r = run_surgeon(kTrain + "--resume --out " + out);
        ASSERT_EQ(r.exit_code, 0) << label << ": " << r.err;
        EXPECT_TRUE(result_of(out) == full) << label << ": the resumed run differs from the uninterrupted one";
        EXPECT_FALSE(fs::exists(out + "/surgeon.lock")) << label;
        for (const auto& e : fs::recursive_directory_iterator(out))  // temporaries of the killed run are gone too
            EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << label << ": " << e.path();
    }
}

}  // namespace
}  // namespace surgeon
