// The student door: load a teacher or student under a plan with phi, and write student folders.
#include "surgery/student.h"

#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "surgery/attention_swap.h"
#include "surgery/stage1_trainer.h"

namespace surgeon {
namespace fs = std::filesystem;

namespace {
void load_phi(WanModel& model, const StudentSpec& spec, const std::string& where) {
    if (spec.phi.empty()) return;
    SURGEON_CHECK(plan_of(model).num_converted() > 0, "--phi: {} runs no attention plan to load them into (give --plan)",
                  where);
    load_distilled_phi(model, spec.phi);
}
}  // namespace

SynthModel load_synth_student(const std::string& model, const StudentSpec& spec, torch::Device device,
                              Precision precision) {
    auto m = load_synth_model(model, device, precision, spec.plan, spec.seed);
    load_phi(m.dit, spec, model);
    return m;
}

LoadedStudent load_wan_student(const std::string& model, const StudentSpec& spec, torch::Device device,
                               Precision precision) {
    auto s = load_model_or_student(model, spec.plan, spec.seed, device, precision);
    load_phi(s.loaded.model, spec, model);
    return s;
}

namespace {
// Links (or copies, where links fail) every file of `from` into `to`, keeping the tree.
void link_tree(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    for (const auto& e : fs::recursive_directory_iterator(from)) {
        const fs::path dst = to / fs::relative(e.path(), from);
        if (e.is_directory()) {
            fs::create_directories(dst);
            continue;
        }
        std::error_code ec;
        fs::create_hard_link(e.path(), dst, ec);
        if (ec) fs::copy_file(e.path(), dst, fs::copy_options::overwrite_existing);
    }
}
}  // namespace

void save_wan_student_folder(const WanModel& dit, const std::string& teacher, const std::string& dir,
                             torch::ScalarType dtype) {
    save_student(dit, dir, dtype, kStudentShardBytes);
    // The teacher's text encoder, tokenizer and VAE (official files or diffusers folders), nothing else of it.
    const fs::path root(teacher);
    for (const char* name : {"text_encoder", "tokenizer", "vae", "google", "models_t5_umt5-xxl-enc-bf16.pth",
                             "Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"}) {
        const fs::path from = root / name, to = fs::path(dir) / name;
        if (fs::is_directory(from)) {
            link_tree(from, to);
        } else if (fs::is_regular_file(from)) {
            std::error_code ec;
            fs::create_hard_link(from, to, ec);
            if (ec) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
        }
    }
}

AttentionPlan write_student(const std::string& teacher, const StudentSpec& spec, const std::string& out) {
    SURGEON_CHECK(!spec.plan.empty(), "student: a plan is required (--plan)");
    if (is_synth_model_folder(teacher)) {
        auto m = load_synth_student(teacher, spec);
        const auto dtype = load_model_or_student(teacher).loaded.checkpoint_dtype;
        atomic_write_dir(out, [&](const std::string& tmp) { save_synth_model(m, tmp, dtype, kStudentShardBytes); });
        return plan_of(m.dit);
    }
    auto s = load_wan_student(teacher, spec);
    atomic_write_dir(out, [&](const std::string& tmp) {
        save_wan_student_folder(s.loaded.model, teacher, tmp, s.loaded.checkpoint_dtype);
    });
    return plan_of(s.loaded.model);
}

}  // namespace surgeon
