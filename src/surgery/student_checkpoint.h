// Student checkpoints (method.md §5.4): a model folder holding the teacher's weights + the feature-map weights
// phi + the attention plan (safetensors metadata "surgeon.plan" AND plan.json beside it). One loader takes a
// teacher folder or a student folder, optionally with a plan file, so forward/sample accept either.
#pragma once
#include <optional>
#include <string>

#include "attention/attention_plan.h"
#include "model/model_io.h"

namespace surgeon {

inline constexpr const char* kPlanMetadataKey = "surgeon.plan";
inline constexpr const char* kPlanFileName = "plan.json";

// Writes config.json + diffusion_pytorch_model.safetensors (teacher weights and phi, in `dtype`, plan in the
// metadata) and plan.json into `dir` (created if needed). The plan is read off the model (plan_of).
void save_student(const WanModel& model, const std::string& dir, torch::ScalarType dtype = torch::kFloat32,
                  uint64_t max_shard_bytes = 0);

// The plan stored in a checkpoint's metadata, if any (errors name `source`).
std::optional<AttentionPlan> plan_from_metadata(const Metadata& metadata, const std::string& source);

struct LoadedStudent {
    LoadedModel loaded;                 // model, folder, metadata, checkpoint dtype
    std::optional<AttentionPlan> plan;  // the plan the model runs; none = the plain teacher
    std::string plan_source;            // "" (none), the --plan path, or "<weights file> metadata"
    bool phi_initialised = false;       // some phi were drawn from the seed (not in the checkpoint)
};

// Loads a teacher folder or a student folder (official/diffusers/sharded layouts). The plan is `plan_path`
// if not empty, else the checkpoint's "surgeon.plan" metadata, else none. Phi missing from the checkpoint
// (a teacher, or a plan that differs from the stored one) are drawn from `seed`; phi stored in a student whose
// own plan is used must all be present. Then moves to `device` and applies `precision` (phi stay float32).
LoadedStudent load_model_or_student(const std::string& path, const std::string& plan_path = "", uint64_t seed = 0,
                                    torch::Device device = torch::kCPU, Precision precision = Precision::Float32);

}  // namespace surgeon
