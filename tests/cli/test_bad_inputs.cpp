// A table of bad inputs across every command (issue 20): each must exit non-zero with exactly one stderr line
// starting with "error:", create no file and leave every input byte-identical. The fixture folder holds copies of
// the inputs and models, a FIFO, links to an input and broken plans/configs; the bundled teacher is watched too.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/fs.h"
#include "core/safetensors.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;
namespace fs = std::filesystem;

namespace {

struct BadCase {
    std::string args;    // after the binary; {T} = fixture folder, {M} = tiny Wan model copy, {S} = bundled teacher
    std::string needle;  // a piece of the expected message
};

std::string expand(std::string s, const std::map<std::string, std::string>& vars) {
    for (const auto& [k, v] : vars)
        for (size_t p; (p = s.find(k)) != std::string::npos;) s.replace(p, k.size(), v);
    return s;
}

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Every path under `dir` (no FIFO is ever opened) with its content (regular files <= 8 MB) or size + mtime.
std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> m;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        struct stat st {};
        ::lstat(e.path().c_str(), &st);
        std::string v = std::to_string(st.st_mode) + ":" + std::to_string(st.st_size);
        if (S_ISREG(st.st_mode) && st.st_size <= (8 << 20)) v += ":" + slurp(e.path().string());
        else v += ":" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
        m[e.path().string()] = v;
    }
    return m;
}

// The binary under `timeout` (a FIFO input must not hang the suite).
CommandResult run_bounded(const std::string& args) {
    const auto dir = temp_dir("bad_cmd");
    const std::string out = dir + "/stdout", err = dir + "/stderr";
    const std::string cmd =
        "timeout -k 5 120 " + std::string(SURGEON_BINARY) + " " + args + " >" + out + " 2>" + err + " </dev/null";
    const int status = std::system(cmd.c_str());
    CommandResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string plan_with(const std::string& block1) {
    return R"({"format": "surgeon.attention_plan", "version": 1, "num_blocks": 2, "blocks": [{"block": 0, "kind": "softmax"}, )" +
           block1 + "]}";
}

// Inputs, models, links, a FIFO and broken files in one folder.
void make_fixture(const std::string& t) {
    fs::copy(golden("wan-t2v-tiny"), t + "/model", fs::copy_options::recursive);
    fs::copy(golden("wan-vae-tiny"), t + "/vae", fs::copy_options::recursive);
    fs::permissions(t + "/model", fs::perms::owner_all, fs::perm_options::add);
    fs::permissions(t + "/vae", fs::perms::owner_all, fs::perm_options::add);
    for (const auto& e : fs::recursive_directory_iterator(t))
        fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    fs::copy_file(golden("dit_forward.safetensors"), t + "/in.safetensors");
    fs::create_symlink(t + "/in.safetensors", t + "/link.safetensors");
    fs::create_hard_link(t + "/in.safetensors", t + "/hard.safetensors");
    fs::create_symlink("/dev/null", t + "/null.png");
    ASSERT_EQ(::mkfifo((t + "/fifo").c_str(), 0600), 0);
    fs::create_directories(t + "/adir");
    auto in = load_safetensors(t + "/in.safetensors");
    save_safetensors(t + "/lat.safetensors", {{"latents", torch::randn({16, 1, 2, 2})}});
    // A latent grid beyond RoPE's 1024 positions: width 2200 / patch 2 = 1100 tokens.
    save_safetensors(t + "/wide.safetensors", {{"in.latents", torch::zeros({1, 4, 1, 2, 2200})},
                                               {"in.timestep", torch::full({1}, 500.0)},
                                               {"in.context", in.at("in.context").narrow(0, 0, 1).contiguous()}});
    // The tiny model with one NaN weight.
    fs::copy(t + "/model", t + "/nanmodel", fs::copy_options::recursive);
    Metadata meta;
    auto w = load_safetensors(t + "/nanmodel/diffusion_pytorch_model.safetensors", &meta);
    w.begin()->second.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
    save_safetensors(t + "/nanmodel/diffusion_pytorch_model.safetensors", w, meta);
    write_file(t + "/rate.json", plan_with(R"({"block": 1, "kind": "hybrid", "rate": 2.5})"));
    write_file(t + "/hidden.json",
               plan_with(R"({"block": 1, "kind": "linear", "feature_map": {"kind": "poly", "hidden": 1000000000}})"));
    write_file(t + "/unknown.json", plan_with(R"({"block": 1, "kind": "hybrid", "rat": 2})"));
    write_file(t + "/broken.json", "{\"options\": [");
    write_file(t + "/loss.csv", "step,loss\n1,0.5\n2,0.25\n");
    const std::string cfg = slurp(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json");
    auto replaced = [&](const std::string& from, const std::string& to) {
        std::string s = cfg;
        s.replace(s.find(from), from.size(), to);
        return s;
    };
    write_file(t + "/dim.json", replaced("\"dim\": 32,", "\"dim\": 32.5,"));
    write_file(t + "/key.json", replaced("\"steps\": 60,", "\"stepz\": 60,"));
    write_file(t + "/world.json", replaced("\"frames\": 4,", "\"frames\": 1000000,"));
    write_file(t + "/wkey.json", replaced("\"frames\": 4,", "\"frames\": 4, \"depth\": 3,"));
    write_file(t + "/steps.json", replaced("\"steps\": 60,", "\"steps\": 2.5,"));
}

const std::vector<BadCase>& bad_cases() {
    static const std::vector<BadCase> cases = {
        // forward: the output guard, input files, flags, model-derived bounds, NaN weights, plans.
        {"forward --model {M} --inputs {T}/in.safetensors --out {T}/in.safetensors", "is the input file"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {T}/link.safetensors", "is the input file"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {T}/hard.safetensors", "is the input file"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {M}/config.json", "inside the model folder"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {M}/diffusion_pytorch_model.safetensors", "inside the model folder"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {M}/new.safetensors", "inside the model folder"},
        {"forward --model {M} --inputs {T}/in.safetensors --out /dev/null", "character device"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {T}/fifo", "FIFO"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {T}/adir", "folder"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {T}/nodir/o.safetensors", "does not exist"},
        {"forward --model {M} --inputs {T}/fifo --out {T}/o.safetensors", "FIFO"},
        {"forward --model {M} --inputs {T}/missing.safetensors --out {T}/o.safetensors", "does not exist"},
        {"forward --model {M} --inputs {T}/adir --out {T}/o.safetensors", "folder"},
        {"forward --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --seed -1", "non-negative integer"},
        {"forward --model {M} --inputs {T}/wide.safetensors --out {T}/o.safetensors", "RoPE"},
        {"forward --model {T}/nanmodel --inputs {T}/in.safetensors --out {T}/o.safetensors", "NaN"},
        {"forward --model {M} --plan {T}/rate.json --inputs {T}/in.safetensors --out {T}/o.safetensors", "must be an integer"},
        {"forward --model {M} --plan {T}/hidden.json --inputs {T}/in.safetensors --out {T}/o.safetensors", "hidden"},
        {"forward --model {M} --plan {T}/unknown.json --inputs {T}/in.safetensors --out {T}/o.safetensors", "unknown key 'rat'"},
        {"forward --model {M} --plan {T}/fifo --inputs {T}/in.safetensors --out {T}/o.safetensors", "FIFO"},
        {"forward --model {M} --plan {M} --inputs {T}/in.safetensors --out {T}/o.safetensors", "folder"},
        // sample: flags before any work.
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --guidance nan", "--guidance"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --guidance inf", "--guidance"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --guidance -1", "--guidance"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --shift nan", "--shift"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --shift 0", "--shift"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --steps 0", "--steps"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --steps -3", "--steps"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/in.safetensors", "is the input file"},
        {"sample --model {M} --inputs {T}/in.safetensors --out {T}/o.safetensors --seed -1", "--seed"},
        // compare and inspect: inputs only.
        {"compare {T}/fifo a {T}/in.safetensors in.latents", "FIFO"},
        {"compare {T}/missing.safetensors a {T}/in.safetensors in.latents", "does not exist"},
        {"inspect {T}/fifo", "fifo"},
        // decode / encode.
        {"decode --vae {T}/vae --latents {T}/lat.safetensors --out {T}/lat.safetensors", "is the input file"},
        {"decode --vae {T}/vae --latents {T}/lat.safetensors --out {T}/vae/x.safetensors", "inside the model folder"},
        {"decode --vae {T}/vae --latents {T}/lat.safetensors --out {T}/vae/Wan2.1_VAE.safetensors", "inside the model folder"},
        {"decode --vae {T}/vae --latents {T}/lat.safetensors --out {T}/null.png", "character device"},
        {"decode --vae {T}/vae --latents {T}/fifo --out {T}/o.safetensors", "FIFO"},
        {"encode --vae {T}/vae --video {T}/lat.safetensors --out {T}/lat.safetensors", "is the input file"},
        {"encode --vae {T}/vae --video {T}/lat.safetensors --out {T}/vae/z.safetensors", "inside the model folder"},
        {"encode --vae {T}/vae --video {T}/fifo --out {T}/o.safetensors", "FIFO"},
        // plan uniform / knapsack.
        {"plan uniform --model {M} --kind hybrid --out {M}/config.json", "inside the model folder"},
        {"plan uniform --model {M} --kind hybrid --out {M}/diffusion_pytorch_model.safetensors", "inside the model folder"},
        {"plan uniform --model {M} --kind linear --poly-hidden 1000000000 --out {T}/p.json", "hidden"},
        {"plan uniform --model {M} --kind hybrid --out {T}/adir", "folder"},
        {"plan uniform --model {M} --kind hybrid --out /dev/null", "character device"},
        {"plan knapsack --model {M} --errors {R}/examples/block-errors.json --budget 0.6 --grid 100000000x100000000x100000000 --out {T}/k.json", "tokens"},
        {"plan knapsack --model {M} --errors {R}/examples/block-errors.json --budget 0.6 --grid 4611686018427387904x4x4 --out {T}/k.json", "tokens"},
        {"plan knapsack --model {M} --errors {T}/fifo --budget 0.6 --grid 2x2x2 --out {T}/k.json", "FIFO"},
        {"plan knapsack --model {M} --errors {T}/broken.json --budget 0.6 --grid 2x2x2 --out {T}/broken.json", "is the input file"},
        {"plan knapsack --model {M} --errors {T}/broken.json --budget 0.6 --grid 2x2x2 --out {T}/k.json", "broken.json"},
        // world / bench-gt.
        {"world --seed -1 --out {T}/w", "--seed"},
        {"world --seed 1 --out {T}/in.safetensors", "not a folder"},
        {"bench-gt --num-samples 0", "--num-samples"},
        {"bench-gt --num-samples 1 --json /dev/null", "character device"},
        // train: flags, configs, outputs.
        {"train --config {R}/configs/tiny-train.json --out {T}/run --steps 0", "--steps"},
        {"train --config {R}/configs/tiny-train.json --out {T}/run --steps -5", "--steps"},
        {"train --config {R}/configs/tiny-train.json --out {T}/run --time-limit nan", "--time-limit"},
        {"train --config {R}/configs/tiny-train.json --out {T}/run --time-limit -1", "--time-limit"},
        {"train --config {T}/dim.json --out {T}/run", "must be an integer"},
        {"train --config {T}/key.json --out {T}/run", "unknown key 'stepz'"},
        {"train --config {T}/wkey.json --out {T}/run", "unknown key 'depth'"},
        {"train --config {T}/steps.json --out {T}/run", "must be an integer"},
        {"train --config {T}/world.json --out {T}/run", "world size"},
        {"train --config {T}/broken.json --out {T}/run", "broken.json"},
        {"train --config {T}/fifo --out {T}/run", "FIFO"},
        {"train --config {R}/configs/tiny-train.json --out {T}/in.safetensors", "not a folder"},
        {"train --config {R}/configs/tiny-train.json --init-from {S} --out {S}/run", "model folder"},
        // generate / eval on the bundled teacher.
        {"generate --model {S} --prompt x --out {T}/g.png --guidance nan", "--guidance"},
        {"generate --model {S} --prompt x --out {T}/g.png --eta nan", "--eta"},
        {"generate --model {S} --prompt x --out {T}/g.png --eta 2", "--eta"},
        {"generate --model {S} --prompt x --out {T}/g.png --shift -1", "--shift"},
        {"generate --model {S} --prompt x --out {T}/g.png --seed -1", "--seed"},
        {"generate --model {S} --prompt x --out {S}/g.png", "inside the model folder"},
        {"generate --model {S} --prompt x --out {T}/g.png --trace {T}/g.png", "same file"},
        {"generate --model {S} --prompt x --out {T}/null.png", "character device"},
        {"eval --model {S} --num-samples 1 --json {S}/surgeon.json", "inside the model folder"},
        {"eval --model {S} --num-samples 0", "--num-samples"},
        {"eval --model {S} --num-samples 1 --json {T}/e.json --sheet {T}/e.json", "same file"},
        // plot.
        {"plot --csv {T}/fifo --out {T}/p.png", "FIFO"},
        {"plot --csv {T}/loss.csv --out {T}/nodir/p.png", "does not exist"},
        {"plot --csv {T}/loss.csv --out {T}/null.png", "character device"},
        // distill: flags and outputs before recording anything.
        {"distill --model {S} --options {R}/examples/distill-options.json --out {T}/d --lr nan", "--lr"},
        {"distill --model {S} --options {R}/examples/distill-options.json --out {T}/d --seed -1", "--seed"},
        {"distill --model {S} --options {R}/examples/distill-options.json --out {T}/d --time-limit nan", "--time-limit"},
        {"distill --model {S} --options {R}/examples/distill-options.json --out {S}", "model folder"},
        {"distill --model {S} --options {T}/fifo --out {T}/d", "FIFO"},
        // student / surgery / finetune: the same guard and seed checks.
        {"student --teacher {S} --plan {T}/rate.json --out {S}/student", "model folder"},
        {"student --teacher {S} --plan {T}/rate.json --out {T}/st --seed -1", "--seed"},
        {"surgery --teacher {S} --budget 0.5 --out {S}", "model folder"},
        {"finetune --student {S} --out {S}/ft", "model folder"},
        {"finetune --student {S} --out {T}/in.safetensors", "not a folder"},
        {"finetune --student {S} --out {T}/ft --data-seed -1", "--data-seed"},
        // the program itself.
        {"bogus", "unknown command 'bogus'"},
        {"forwrd --model {M}", "unknown command 'forwrd'"},
    };
    return cases;
}

}  // namespace

TEST(BadInputs, EveryCommandFailsCleanlyAndWritesNothing) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny"));
    const auto t = temp_dir("bad_inputs");
    make_fixture(t);
    const std::string teacher = std::string(SURGEON_SOURCE_DIR) + "/models/synth-teacher";
    const std::map<std::string, std::string> vars = {
        {"{T}", t}, {"{M}", t + "/model"}, {"{S}", teacher}, {"{R}", SURGEON_SOURCE_DIR}};
    ASSERT_GE(bad_cases().size(), 60u);
    for (const auto& c : bad_cases()) {
        const auto before = snapshot(t), teacher_before = snapshot(teacher);
        const std::string args = expand(c.args, vars);
        const auto r = run_bounded(args);
        EXPECT_NE(r.exit_code, 0) << args;
        EXPECT_NE(r.exit_code, 124) << "timed out: " << args;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\nstderr: " << r.err;
        EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << args << "\nstderr: " << r.err;
        EXPECT_NE(r.err.find(c.needle), std::string::npos) << args << "\nexpected '" << c.needle << "' in: " << r.err;
        EXPECT_TRUE(snapshot(t) == before) << "files changed or created: " << args;
        EXPECT_TRUE(snapshot(teacher) == teacher_before) << "teacher folder changed: " << args;
        remove_tree(t + "/run");  // never created; a leftover would fail the next snapshot comparison anyway
    }
}

// Runs that fail leave nothing behind; a tampered progress.json or a changed architecture on --resume is refused
// before anything is written.
TEST(BadInputs, TrainFailuresLeaveNoLeftoversAndResumeIsChecked) {
    const auto t = temp_dir("bad_train");
    const std::string cfg = std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json";
    const std::string teacher = std::string(SURGEON_SOURCE_DIR) + "/models/synth-teacher";
    auto expect_clean = [&](const CommandResult& r, const std::string& needle, const std::string& what) {
        EXPECT_NE(r.exit_code, 0) << what;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << ": " << r.err;
        EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << what << ": " << r.err;
        EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": " << r.err;
    };
    // A warm start from a model of another architecture fails after the run folder was made: it is removed.
    expect_clean(run_bounded("train --config " + cfg + " --out " + t + "/fresh --steps 2 --init-from " + teacher),
                 "", "init-from another architecture");
    EXPECT_FALSE(fs::exists(t + "/fresh"));
    // An existing folder keeps its files, but gets no train_config.json from a failed run.
    fs::create_directories(t + "/existing");
    write_file(t + "/existing/notes.txt", "mine");
    expect_clean(run_bounded("train --config " + cfg + " --out " + t + "/existing --steps 2 --init-from " + teacher), "",
                 "existing folder");
    EXPECT_EQ(slurp(t + "/existing/notes.txt"), "mine");
    EXPECT_FALSE(fs::exists(t + "/existing/train_config.json"));

    // A real run with a checkpoint, then tampered / mismatched resumes.
    auto ok = run_bounded("train --config " + cfg + " --out " + t + "/run --steps 20");
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    const std::string prog = t + "/run/checkpoint/progress.json";
    ASSERT_TRUE(fs::exists(prog));
    const std::string original = slurp(prog);
    std::string tampered = original;
    const auto at = tampered.find("\"step\":");
    ASSERT_NE(at, std::string::npos) << original;
    tampered.replace(at, tampered.find_first_of(",}", at) - at, "\"step\": -5");
    write_file(prog, tampered);
    auto before = snapshot(t + "/run");
    expect_clean(run_bounded("train --config " + cfg + " --out " + t + "/run --steps 40 --resume"), "'step'",
                 "tampered progress");
    EXPECT_TRUE(snapshot(t + "/run") == before);
    write_file(prog, original);
    std::string other = slurp(cfg);
    other.replace(other.find("\"ffn_dim\": 64"), 13, "\"ffn_dim\": 96");
    write_file(t + "/other.json", other);
    before = snapshot(t + "/run");
    expect_clean(run_bounded("train --config " + t + "/other.json --out " + t + "/run --steps 40 --resume"),
                 "differs", "mismatched resume");
    EXPECT_TRUE(snapshot(t + "/run") == before) << "train_config.json or the checkpoint changed";
}
