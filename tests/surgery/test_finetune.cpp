// Stage 3 (surgery/stage3_finetune.h) on a tiny synth teacher and a student of it, on the CPU: the loss falls
// on held-out batches, each trainable set changes exactly its tensors (the text encoder never), a stopped and
// resumed run equals an uninterrupted one bitwise, and bad inputs are refused in one line before any work.
#include <ATen/Parallel.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "attention/attention_plan.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "surgery/stage3_finetune.h"
#include "pipelines/trainer.h"
#include "surgery/attention_swap.h"
#include "testing/testing.h"
#include "world/text_encoder.h"

using namespace surgeon;
using namespace surgeon::testing;
namespace fs = std::filesystem;

namespace {

// A tiny teacher (configs/tiny-train.json, 30 steps, no EMA) — trained once per test process.
const std::string& tiny_teacher() {
    static const std::string dir = [] {
        auto c = TrainConfig::from_json(
            nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json")));
        c.steps = 30;
        c.ema = 0;
        const auto d = temp_dir("ft_teacher");
        train_synth_model(c, d, false, false);
        return d + "/model";
    }();
    return dir;
}

// A student of the tiny teacher: block 0 hybrid R=2 (poly feature maps drawn from seed 3), block 1 softmax.
const std::string& tiny_student() {
    static const std::string dir = [] {
        const auto d = temp_dir("ft_student");
        PlanEntry e;
        e.kind = AttentionKind::Hybrid;
        e.rate = 2;
        const auto plan = uniform_plan(2, 16, e, {0});
        plan.save(d + "/plan_in.json");
        auto m = load_synth_model(tiny_teacher(), torch::kCPU, Precision::Float32, d + "/plan_in.json", 3);
        save_synth_model(m, d + "/student");
        return d + "/student";
    }();
    return dir;
}

FinetuneConfig tiny_config(const std::string& out, int64_t steps) {
    FinetuneConfig c;
    c.student = tiny_student();
    c.out = out;
    c.steps = steps;
    c.batch = 2;
    c.warmup = 2;
    c.lr = 1e-3;
    c.checkpoint_every = 5;
    c.log_every = 4;
    c.progress = false;
    return c;
}

TensorMap dit_tensors(const SynthModel& m) {
    TensorMap o;
    for (const auto& [n, t] : state_dict(*m.dit)) o[n] = t.detach().clone();
    return o;
}
TensorMap te_tensors(const SynthModel& m) {
    TensorMap o;
    auto enc = m.text_encoder;  // a handle (text_encoder_state takes it by non-const reference)
    for (const auto& [n, t] : world::text_encoder_state(enc)) o[n] = t.detach().clone();
    return o;
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

}  // namespace

TEST(Finetune, LowersHeldOutFlowMatchingLoss) {
    at::set_num_threads(1);
    const auto dir = temp_dir("ft_loss");
    auto c = tiny_config(dir + "/out", 40);
    c.batch = 4;
    c.lr = 2e-3;
    auto before = load_synth_model(c.student);
    // Held-out batches: another data seed than the run's.
    auto held = c;
    held.data_seed = 500;
    const auto data = finetune_data_config(held, before);
    double loss_before = 0, loss_after = 0;
    const auto r = run_finetune(c);
    EXPECT_TRUE(r.finished);
    EXPECT_EQ(r.steps_done, 40);
    EXPECT_TRUE(std::isfinite(r.final_loss));
    auto after = load_synth_model(r.model_dir);
    EXPECT_EQ(plan_of(after.dit), plan_of(before.dit)) << "the fine-tuned student keeps its plan";
    for (int64_t s = 0; s < 6; ++s) {
        const auto b = make_train_batch(data, s);
        loss_before += flow_matching_loss(before, b);
        loss_after += flow_matching_loss(after, b);
    }
    EXPECT_LT(loss_after, 0.9 * loss_before) << "before " << loss_before / 6 << " after " << loss_after / 6;
    EXPECT_EQ(read_losses(dir + "/out").size(), 10u);
    EXPECT_TRUE(fs::exists(dir + "/out/loss.png"));
    EXPECT_TRUE(fs::exists(dir + "/out/finetune_config.json"));
    EXPECT_TRUE(fs::exists(dir + "/out/model/plan.json"));
}

TEST(Finetune, TeacherVelocityMatchingRuns) {
    at::set_num_threads(1);
    const auto dir = temp_dir("ft_teacher_match");
    auto c = tiny_config(dir + "/out", 4);
    c.teacher = tiny_teacher();
    c.teacher_weight = 1.0;
    const auto r = run_finetune(c);
    EXPECT_TRUE(r.finished);
    std::ifstream in(dir + "/out/loss.csv");
    std::string header, row;
    std::getline(in, header);
    std::getline(in, row);
    EXPECT_EQ(header, "step,loss,teacher_mse,lr,grad_norm,elapsed_s");
    // The student is the teacher with block 0 swapped: its velocity differs, so the matching term is > 0.
    const double tm = std::stod(row.substr(row.find(',', row.find(',') + 1) + 1));
    EXPECT_GT(tm, 0.0);
    EXPECT_TRUE(std::isfinite(tm));
}

TEST(Finetune, TrainableSetsChangeOnlyTheirTensors) {
    at::set_num_threads(1);
    const auto student = load_synth_model(tiny_student());
    const auto dit0 = dit_tensors(student), te0 = te_tensors(student);
    for (const std::string mode : {"phi", "attention", "all"}) {
        SCOPED_TRACE(mode);
        const auto dir = temp_dir("ft_trainable_" + mode);
        auto c = tiny_config(dir + "/out", 3);
        c.trainable = mode;
        c.lr = 1e-2;
        const auto r = run_finetune(c);
        const auto names = finetune_trainable_names(student.dit, mode);
        EXPECT_EQ(r.trainable_tensors, static_cast<int64_t>(names.size()));
        auto m = load_synth_model(r.model_dir);
        const auto dit1 = dit_tensors(m), te1 = te_tensors(m);
        ASSERT_EQ(dit1.size(), dit0.size());
        int64_t changed = 0;
        for (const auto& [n, t] : dit0) {
            const bool in_set = std::find(names.begin(), names.end(), n) != names.end();
            const bool expected = mode == "all" || (mode == "attention" ? starts_with(n, "blocks.0.self_attn.")
                                                                          : starts_with(n, "blocks.0.self_attn.attn."));
            EXPECT_EQ(in_set, expected) << n;
            const bool diff = !torch::equal(t, dit1.at(n));
            EXPECT_EQ(diff, expected) << n << (expected ? " did not change" : " changed but is frozen");
            changed += diff;
        }
        EXPECT_EQ(changed, static_cast<int64_t>(names.size()));
        if (mode == "phi") {
            // Exactly the feature maps (and the scale, where the core has one) of the converted block.
            for (const auto& n : names) EXPECT_TRUE(starts_with(n, "blocks.0.self_attn.attn.")) << n;
            EXPECT_GE(names.size(), 4u);  // phi_q and phi_k: w1, b1, w2, b2 each
        }
        for (const auto& [n, t] : te0) EXPECT_TRUE(torch::equal(t, te1.at(n))) << "text encoder " << n << " changed";
    }
}

TEST(Finetune, ResumeAfterStopMatchesUninterruptedRun) {
    at::set_num_threads(1);
    const auto dir = temp_dir("ft_resume");
    auto a = tiny_config(dir + "/a", 12), b = tiny_config(dir + "/b", 12);
    a.teacher = b.teacher = tiny_teacher();
    a.teacher_weight = b.teacher_weight = 0.5;
    a.trainable = b.trainable = "attention";
    const auto ra = run_finetune(a);
    // Stop at step 7: after the checkpoint at 5 and inside the log window 5..8.
    const auto rb1 = run_finetune(b, 7);
    EXPECT_FALSE(rb1.finished);
    EXPECT_EQ(rb1.steps_done, 7);
    EXPECT_TRUE(fs::exists(dir + "/b/model/plan.json")) << "model/ is refreshed at the stop";
    // Resuming with other settings is refused; a fresh run into a folder that holds one too.
    auto other = b;
    other.resume = true;
    other.lr = 2e-3;
    EXPECT_NE(error_of([&] { run_finetune(other); }).find("--resume with different settings: lr"), std::string::npos)
        << error_of([&] { run_finetune(other); });
    EXPECT_NE(error_of([&] { run_finetune(b); }).find("already holds a fine-tuning run"), std::string::npos);
    b.resume = true;
    const auto rb2 = run_finetune(b);
    EXPECT_TRUE(rb2.finished);
    EXPECT_EQ(rb2.final_loss, ra.final_loss);
    const auto sa = load_safetensors(dir + "/a/checkpoint/state.safetensors");
    const auto sb = load_safetensors(dir + "/b/checkpoint/state.safetensors");
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto& [n, t] : sa) {
        if (n == "history") continue;
        ASSERT_TRUE(sb.count(n)) << n;
        EXPECT_TRUE(torch::equal(t, sb.at(n))) << n << " differs after resume";
    }
    // Same loss log (elapsed time aside).
    const auto ha = sa.at("history"), hb = sb.at("history");
    ASSERT_EQ(ha.sizes(), hb.sizes());
    EXPECT_TRUE(torch::equal(ha.narrow(1, 0, 5), hb.narrow(1, 0, 5)));
    const auto ma = load_synth_model(dir + "/a/model"), mb = load_synth_model(dir + "/b/model");
    for (const auto& [n, t] : dit_tensors(ma)) EXPECT_TRUE(torch::equal(t, dit_tensors(mb).at(n))) << n;
}

TEST(Finetune, BadInputsFailInOneLineBeforeAnyWork) {
    const auto dir = temp_dir("ft_bad");
    const auto out = dir + "/out";
    auto expect_refused = [&](const std::function<void(FinetuneConfig&)>& edit, const std::string& fragment) {
        auto c = tiny_config(out, 3);
        edit(c);
        const auto msg = error_of([&] { run_finetune(c); });
        EXPECT_NE(msg.find(fragment), std::string::npos) << "message: " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        EXPECT_FALSE(fs::exists(out)) << "wrote " << out << " for: " << fragment;
        remove_tree(out);
    };
    expect_refused([](auto& c) { c.steps = 0; }, "steps must be in [1, 1e8], got 0");
    expect_refused([](auto& c) { c.batch = 0; }, "batch must be in [1, 4096], got 0");
    expect_refused([](auto& c) { c.lr = std::nan(""); }, "lr must be finite and in (0, 1), got nan");
    expect_refused([](auto& c) { c.lr = -1; }, "lr must be finite and in (0, 1), got -1");
    expect_refused([](auto& c) { c.lr = INFINITY; }, "lr must be finite");
    expect_refused([](auto& c) { c.warmup = -1; }, "warmup must be >= 0");
    expect_refused([](auto& c) { c.grad_clip = 0; }, "grad_clip must be finite and > 0");
    expect_refused([](auto& c) { c.trainable = "mlp"; }, "trainable must be all, attention or phi, got 'mlp'");
    expect_refused([](auto& c) { c.dtype = "fp16"; }, "dtype must be fp32, bf16 or bf16-lean, got 'fp16'");
    expect_refused([](auto& c) { c.teacher_weight = 1; }, "teacher_weight 1 needs --teacher");
    expect_refused([](auto& c) { c.teacher = tiny_teacher(); }, "only used with --teacher-weight > 0");
    expect_refused([](auto& c) { c.teacher_weight = -1; c.teacher = tiny_teacher(); }, "teacher_weight must be finite");
    expect_refused([](auto& c) { c.data_seed = 7; }, "SynthBench's held-out evaluation seeds");
    expect_refused([](auto& c) { c.time_limit_s = -1; }, "time limit must be finite and >= 0");
    expect_refused([&](auto& c) { c.student = dir + "/nope"; }, "not a synth model folder");
    expect_refused([](auto& c) { c.student = tiny_teacher(); }, "not a student (no plan.json");
    expect_refused([&](auto& c) { c.teacher = dir + "/nope"; c.teacher_weight = 1; }, "--teacher " + dir + "/nope: not a synth model folder");
    // Outputs inside (or equal to, or around) the inputs.
    {
        auto c = tiny_config(tiny_student() + "/ft", 3);
        const auto msg = error_of([&] { run_finetune(c); });
        EXPECT_NE(msg.find("must not be, lie inside or contain --student"), std::string::npos) << msg;
        EXPECT_FALSE(fs::exists(tiny_student() + "/ft"));
        c.out = fs::path(tiny_student()).parent_path().string();
        EXPECT_NE(error_of([&] { run_finetune(c); }).find("must not be, lie inside or contain --student"), std::string::npos);
        c.out = tiny_config(out, 3).out;
        c.teacher = tiny_teacher();
        c.teacher_weight = 1;
        c.out = tiny_teacher() + "/x";
        EXPECT_NE(error_of([&] { run_finetune(c); }).find("contain --teacher"), std::string::npos);
    }
    // A file where the folder should go.
    {
        std::ofstream(dir + "/file") << "x";
        auto c = tiny_config(dir + "/file", 3);
        EXPECT_NE(error_of([&] { run_finetune(c); }).find("exists and is not a folder"), std::string::npos);
    }
    // A teacher of another architecture.
    {
        auto t = TrainConfig::from_json(
            nlohmann::json::parse(read_text_file(std::string(SURGEON_SOURCE_DIR) + "/configs/tiny-train.json")));
        t.model.ffn_dim = 48;
        auto m = init_synth_model(t);
        save_synth_model(m, dir + "/other_teacher");
        auto c = tiny_config(out, 3);
        c.teacher = dir + "/other_teacher";
        c.teacher_weight = 1;
        const auto msg = error_of([&] { run_finetune(c); });
        EXPECT_NE(msg.find("DiT config"), std::string::npos) << msg;
        EXPECT_FALSE(fs::exists(out));
    }
}

TEST(Finetune, CommandLine) {
    const auto dir = temp_dir("ft_cli");
    auto r = run_surgeon("finetune --student " + tiny_student() + " --steps 0 --out " + dir + "/out");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.err, "error: finetune: steps must be in [1, 1e8], got 0\n");
    r = run_surgeon("finetune --student " + tiny_student() + " --steps 2 --out " + dir + "/out --trainable bogus");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.err, "error: finetune: trainable must be all, attention or phi, got 'bogus'\n");
    EXPECT_FALSE(fs::exists(dir + "/out"));
    r = run_surgeon("finetune --student " + tiny_student() + " --steps 2 --batch 1 --trainable phi --out " + dir + "/out");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("fine-tuned 2 steps"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("student in " + dir + "/out/model"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(dir + "/out/model/plan.json"));
    // --resume of a finished run does nothing more and succeeds.
    r = run_surgeon("finetune --student " + tiny_student() + " --steps 2 --batch 1 --trainable phi --resume --out " + dir + "/out");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}
