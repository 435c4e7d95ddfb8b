// The one door to students (method.md §5.4): a teacher folder or a student folder, optionally under an attention
// plan, optionally with the feature maps a `surgeon distill` run trained. Every command that runs a model (forward,
// sample, generate, eval, inspect, finetune, surgery) loads through here, so a plan is validated once, at load, and
// the rules for feature maps are in one place (surgery/student_checkpoint.h):
//  * a student under its own plan: its phi must all be present;
//  * a student under another plan: blocks whose entry changed must not hold phi of the old entry (error);
//  * a teacher under a plan: phi from `phi` (a distill run; every converted block's option must be in its table)
//    or drawn from `seed`.
// A student folder is a model folder whose DiT checkpoint carries the plan (metadata "surgeon.plan" and plan.json);
// for synth models it also holds the text encoder and surgeon.json, so `surgeon generate --model STUDENT` just works.
#pragma once
#include <string>

#include "pipelines/synth_model.h"
#include "surgery/student_checkpoint.h"

namespace surgeon {

// Student checkpoints are written in shards of at most this many tensor bytes (files in the
// repository stay under 16 MiB).
inline constexpr uint64_t kStudentShardBytes = 15u << 20;  // tensor bytes; the header comes on top

struct StudentSpec {
    std::string plan;  // plan JSON (empty: the checkpoint's own plan, if any)
    std::string phi;   // output folder of `surgeon distill` (empty: phi from the checkpoint or the seed)
    uint64_t seed = 0; // phi not in the checkpoint nor in `phi` are drawn from this seed
};

// A synth teacher or student (the DiT under the spec's plan, phi loaded as described above).
SynthModel load_synth_student(const std::string& model, const StudentSpec& spec, torch::Device device = torch::kCPU,
                              Precision precision = Precision::Float32);
// A Wan teacher or student folder (official / diffusers / sharded), same rules.
LoadedStudent load_wan_student(const std::string& model, const StudentSpec& spec, torch::Device device = torch::kCPU,
                               Precision precision = Precision::Float32);

// A Wan student folder in `dir`: the DiT with its plan (save_student, shards of kStudentShardBytes) and, linked
// (copied where links fail) from the Wan teacher folder, everything else `surgeon generate` needs: the text encoder,
// tokenizer and VAE (official files or diffusers folders). The DiT sits at the root (official layout).
void save_wan_student_folder(const WanModel& dit, const std::string& teacher, const std::string& dir,
                             torch::ScalarType dtype);

// `surgeon student`: writes the student of `teacher` under `spec` into `out` (atomic: a temporary folder renamed into
// place). Synth teachers give a synth student folder, Wan teachers a Wan student folder (save_wan_student_folder); the weights and phi are
// stored in the teacher checkpoint's dtype (the loader allows one dtype per checkpoint).
// Returns the plan the student runs.
AttentionPlan write_student(const std::string& teacher, const StudentSpec& spec, const std::string& out);

}  // namespace surgeon
