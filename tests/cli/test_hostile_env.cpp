// Hostile environments (issue 20): two runs writing one folder (the run lock), a full disk (a file size limit:
// writes fail with EFBIG exactly as with ENOSPC, without root), a diverging run (NaN/Inf), an output folder that is
// a file, huge nested JSON, out-of-memory errors. Each gives one `error:` line and a non-zero exit, and leaves every
// earlier output intact (the last checkpoint still resumes).
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "attention/attention_plan.h"
#include "cli/error_report.h"
#include "core/finite_guard.h"
#include "core/fs.h"
#include "core/json_limits.h"
#include "core/run_lock.h"
#include "core/safetensors.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
namespace fs = std::filesystem;
using testing::CommandResult;
using testing::error_of;
using testing::run_surgeon;
using testing::temp_dir;

const std::string kConfig = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
// 4 steps of batch 1, a checkpoint every 2: a few seconds on the CPU.
const std::string kTrain = "train --config " + kConfig + " --set batch=1 checkpoint_every=2 log_every=2 ";

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Every regular file under `dir` with its content.
std::map<std::string, std::string> files_of(const std::string& dir) {
    std::map<std::string, std::string> m;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) m[fs::relative(e.path(), dir).string()] = slurp(e.path().string());
    return m;
}

void expect_one_error_line(const CommandResult& r, const std::string& needle, const std::string& what) {
    EXPECT_NE(r.exit_code, 0) << what;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << ": " << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << what << ": " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": " << r.err;
}

// Long commands print progress on stderr: the error is then its last line, and the only one starting "error:".
void expect_error_last_line(const CommandResult& r, const std::string& needle, const std::string& what) {
    EXPECT_NE(r.exit_code, 0) << what;
    size_t errors = 0;
    for (size_t at = r.err.find("error: "); at != std::string::npos; at = r.err.find("error: ", at + 1))
        errors += at == 0 || r.err[at - 1] == '\n' || r.err[at - 1] == '\r';
    EXPECT_EQ(errors, 1u) << what << ": " << r.err;
    const auto last = r.err.rfind('\n', r.err.size() >= 2 ? r.err.size() - 2 : 0);
    const std::string line = r.err.substr(last == std::string::npos ? 0 : last + 1);
    EXPECT_EQ(line.rfind("error: ", 0), 0u) << what << ": " << r.err;
    EXPECT_NE(line.find(needle), std::string::npos) << what << ": " << r.err;
}

// The binary in a shell that first runs `prefix` (e.g. a ulimit), so the limit applies to surgeon alone.
CommandResult run_in_shell(const std::string& prefix, const std::string& args) {
    const auto dir = temp_dir("hostile_cmd");
    const std::string cmd = "bash -c '" + prefix + "; exec " + SURGEON_BINARY + " " + args + "' >" + dir +
                            "/stdout 2>" + dir + "/stderr </dev/null";
    const int status = std::system(cmd.c_str());
    CommandResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(dir + "/stdout");
    r.err = slurp(dir + "/stderr");
    return r;
}

TEST(RunLock, OneHolderStaleFilesAreTakenOverAndRemovedOnRelease) {
    const auto dir = temp_dir("run_lock");
    {
        RunLock a(dir, "train");
        EXPECT_TRUE(fs::exists(dir + "/surgeon.lock"));
        EXPECT_EQ(slurp(dir + "/surgeon.lock"), std::to_string(::getpid()) + "\n");
        // A second holder (another open file: flock conflicts even inside one process) is refused in one line.
        const auto msg = error_of([&] { RunLock b(dir, "train"); });
        EXPECT_NE(msg.find("another surgeon run (pid " + std::to_string(::getpid()) + ") is writing this folder"),
                  std::string::npos)
            << msg;
    }
    EXPECT_FALSE(fs::exists(dir + "/surgeon.lock"));
    // A file left by a killed run holds no flock: it is stale and taken over.
    std::ofstream(dir + "/surgeon.lock") << "999999\n";
    RunLock c(dir, "distill");
    EXPECT_TRUE(c.held());
    c.release();
    EXPECT_FALSE(fs::exists(dir + "/surgeon.lock"));
}

TEST(HostileEnv, TwoRunsOnOneFolderAndAStaleLockAfterSigkill) {
    const auto dir = temp_dir("two_runs");
    const std::string run = dir + "/run";
    // A long first run in the background; the shell's pid is the surgeon process (exec).
    const std::string cmd = "bash -c 'echo $$ > " + dir + "/pid; exec " + SURGEON_BINARY + " " + kTrain + "--steps 100000 --out " +
                            run + " >/dev/null 2>&1' &";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    const auto t0 = std::chrono::steady_clock::now();
    while (!(fs::exists(run + "/surgeon.lock") && fs::exists(run + "/train_config.json")) &&
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(fs::exists(run + "/surgeon.lock")) << "the first run never started";
    const pid_t pid = std::stoi(slurp(dir + "/pid"));
    auto r = run_surgeon(kTrain + "--steps 4 --resume --out " + run);
    expect_one_error_line(r, "another surgeon run (pid " + std::to_string(pid) + ") is writing this folder",
                          "second run");
    EXPECT_TRUE(fs::exists(run + "/surgeon.lock"));
    ::kill(pid, SIGKILL);
    // The kernel drops the flock when the process dies; the file stays behind, stale.
    for (int i = 0; i < 200 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(fs::exists(run + "/surgeon.lock"));
    r = run_surgeon(kTrain + "--steps 4 --resume --out " + run);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(fs::exists(run + "/surgeon.lock"));
    EXPECT_TRUE(fs::exists(run + "/model/config.json"));
}

TEST(HostileEnv, DiskFullLeavesEarlierOutputsIntact) {
    const auto dir = temp_dir("disk_full");
    const std::string teacher = std::string(SURGEON_SOURCE_DIR) + "/models/synth-teacher";
    // `ulimit -f 1` (1 KiB: room for the error line, not for the 1.2 KiB plan) makes the write fail with EFBIG
    // (SIGXFSZ ignored), as a full disk would with ENOSPC.
    std::ofstream(dir + "/plan.json") << "earlier output\n";
    auto r = run_in_shell("ulimit -f 1; trap \"\" XFSZ",
                          "plan uniform --model " + teacher + " --kind linear --out " + dir + "/plan.json");
    expect_one_error_line(r, "plan.json: write failed (File too large)", "plan under ulimit -f 1");
    EXPECT_EQ(slurp(dir + "/plan.json"), "earlier output\n");
    for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "plan.json") << e.path();

    // A training run whose checkpoint write fails: the checkpoint and model of step 2 stay, and resume from them.
    const std::string run = dir + "/run";
    r = run_surgeon(kTrain + "--steps 2 --out " + run);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto ckpt = files_of(run + "/checkpoint"), model = files_of(run + "/model");
    r = run_in_shell("ulimit -f 16; trap \"\" XFSZ", kTrain + "--steps 4 --resume --out " + run);
    expect_error_last_line(r, "write failed (File too large)", "train under ulimit -f 16");
    EXPECT_TRUE(files_of(run + "/checkpoint") == ckpt) << "checkpoint changed";
    EXPECT_TRUE(files_of(run + "/model") == model) << "model changed";
    EXPECT_FALSE(fs::exists(run + "/checkpoint.tmp"));
    EXPECT_FALSE(fs::exists(run + "/surgeon.lock"));
    r = run_surgeon(kTrain + "--steps 4 --resume --out " + run);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("trained 4 steps"), std::string::npos) << r.out;
}

TEST(HostileEnv, DivergingTrainingStopsAndKeepsTheLastCheckpoint) {
    const auto dir = temp_dir("nan_train");
    const std::string run = dir + "/run";
    auto r = run_surgeon(kTrain + "--steps 2 --out " + run);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto ckpt = files_of(run + "/checkpoint"), model = files_of(run + "/model");
    // A weight decay of 1e300 overflows the weights at step 3: the loss or the gradient norm becomes Inf/NaN.
    r = run_surgeon("train --config " + kConfig + " --set batch=1 checkpoint_every=2 log_every=2 weight_decay=1e300 "
                    "--steps 4 --resume --out " + run);
    expect_error_last_line(r, "in steps 3..4", "diverging run");
    EXPECT_NE(r.err.find("became"), std::string::npos) << r.err;
    EXPECT_TRUE(files_of(run + "/checkpoint") == ckpt) << "a diverged checkpoint replaced the last good one";
    EXPECT_TRUE(files_of(run + "/model") == model);
    r = run_surgeon(kTrain + "--steps 4 --resume --out " + run);
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(HostileEnv, NonFiniteStateIsNamedBeforeACheckpoint) {
    TensorMap st{{"w", torch::ones({3})}, {"ids", torch::arange(3)}, {"m", torch::tensor({1.0, static_cast<double>(INFINITY)})}};
    const auto msg = error_of([&] { check_state_finite(st, "finetune", 12); });
    EXPECT_EQ(msg, "finetune: training diverged at step 12: NaN or Inf in 'm' (the last checkpoint is kept; lower the "
                   "learning rate, then --resume)");
    st["m"] = torch::zeros({2});
    EXPECT_NO_THROW(check_state_finite(st, "finetune", 12));
}

TEST(HostileEnv, OutputFolderThatIsAFile) {
    const auto dir = temp_dir("out_file");
    std::ofstream(dir + "/taken") << "mine";
    auto r = run_surgeon(kTrain + "--steps 2 --out " + dir + "/taken");
    expect_one_error_line(r, "not a folder", "--out names a file");
    EXPECT_EQ(slurp(dir + "/taken"), "mine");
    // Below a file: the parent is not a folder.
    r = run_surgeon(kTrain + "--steps 2 --out " + dir + "/taken/run");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(slurp(dir + "/taken"), "mine");
}

TEST(HostileEnv, HugeNestedJsonFailsFastInOneLine) {
    const auto dir = temp_dir("nested_json");
    const std::string deep = std::string(200000, '[') + std::string(200000, ']');
    std::ofstream(dir + "/deep.json") << deep;
    auto msg = error_of([&] { read_json_file(dir + "/deep.json"); });
    EXPECT_NE(msg.find("nested deeper than 64 levels"), std::string::npos) << msg;
    msg = error_of([&] { AttentionPlan::parse("{\"blocks\": " + deep + "}", "plan.json"); });
    EXPECT_NE(msg.find("plan.json: invalid JSON (nested deeper than 64 levels)"), std::string::npos) << msg;
    // Surgeon's own files nest at most a few levels: the cap leaves them alone.
    EXPECT_NO_THROW(read_json_file(std::string(SURGEON_SOURCE_DIR) + "/models/synth-student/plan.json"));
    // Over the size cap: refused before parsing.
    {
        std::ofstream big(dir + "/big.json");
        big << "[";
        const std::string chunk(1 << 20, ' ');
        for (uint64_t i = 0; i <= (kMaxJsonFileBytes >> 20); ++i) big << chunk;
        big << "]";
    }
    msg = error_of([&] { read_json_file(dir + "/big.json"); });
    EXPECT_NE(msg.find("exceeds the limit of"), std::string::npos) << msg;
    // A safetensors header nested 200000 deep (inside the 100 MB header cap).
    {
        const std::string h = "{\"a\": " + deep + "}";
        std::ofstream f(dir + "/deep.safetensors", std::ios::binary);
        uint64_t n = h.size();
        for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
        f << h;
    }
    msg = error_of([&] { load_safetensors(dir + "/deep.safetensors"); });
    EXPECT_NE(msg.find("corrupt safetensors header: invalid JSON (nested deeper than 64 levels)"), std::string::npos)
        << msg;
}

TEST(ErrorReport, OutOfMemoryAndOtherErrorsAreOneLine) {
    using cli::report_exception;
    auto report = [](auto&& thrower) {
        try {
            thrower();
        } catch (...) {
            return report_exception(std::current_exception());
        }
        return cli::ErrorReport{};
    };
    // What the CUDA caching allocator throws (its message spans several sentences and lines).
    const auto oom = report([] {
        throw c10::OutOfMemoryError(
            c10::SourceLocation{"alloc", "CUDACachingAllocator.cpp", 1},
            "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.2 "
            "GiB is free.\nOf the allocated memory 70 GiB is allocated by PyTorch. If reserved but unallocated memory "
            "is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True");
    });
    EXPECT_EQ(oom.exit_code, 1);
    EXPECT_EQ(oom.line.rfind("out of GPU memory: CUDA out of memory. Tried to allocate 20.00 GiB. Lower --batch", 0), 0u)
        << oom.line;
    EXPECT_EQ(oom.line.find('\n'), std::string::npos);
    const auto host = report([] { throw std::bad_alloc(); });
    EXPECT_EQ(host.line.rfind("out of memory (host)", 0), 0u) << host.line;
    const auto c10e = report([] { TORCH_CHECK(false, "first\nsecond"); });
    EXPECT_EQ(c10e.line.find('\n'), std::string::npos) << c10e.line;
    const auto fse = report([] {
        throw fs::filesystem_error("x", fs::path("/a"), fs::path("/b"), std::make_error_code(std::errc::no_space_on_device));
    });
    EXPECT_EQ(fse.line, "/a -> /b: " + std::make_error_code(std::errc::no_space_on_device).message());
    // A CPU allocation beyond the machine is refused as an error too (c10 throws; nothing is written).
    const auto huge = report([] { (void)torch::empty({int64_t(1) << 50}, torch::kFloat32); });
    EXPECT_FALSE(huge.line.empty());
    EXPECT_EQ(huge.line.find('\n'), std::string::npos) << huge.line;
}

}  // namespace
}  // namespace surgeon
