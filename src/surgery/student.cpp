// The student door: load a teacher or student under a plan with phi, and write student folders.
#include "surgery/student.h"

#include "core/error.h"
#include "core/fs.h"
#include "surgery/attention_swap.h"
#include "surgery/stage1_trainer.h"

namespace surgeon {

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
        save_student(s.loaded.model, tmp, s.loaded.checkpoint_dtype, kStudentShardBytes);
    });
    return plan_of(s.loaded.model);
}

}  // namespace surgeon
