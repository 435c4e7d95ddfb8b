// Student checkpoint save/load: teacher weights + phi + plan (metadata and plan.json).
#include "surgery/student_checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "surgery/attention_swap.h"

namespace surgeon {
namespace fs = std::filesystem;

void save_student(const WanModel& model, const std::string& dir, torch::ScalarType dtype, uint64_t max_shard_bytes) {
    const AttentionPlan plan = plan_of(model);
    save_wan_model(model, dir, dtype, max_shard_bytes, {{kPlanMetadataKey, plan.dump()}});
    plan.save((fs::path(dir) / kPlanFileName).string());
}

std::optional<AttentionPlan> plan_from_metadata(const Metadata& metadata, const std::string& source) {
    auto it = metadata.find(kPlanMetadataKey);
    if (it == metadata.end()) return std::nullopt;
    return AttentionPlan::parse(it->second, source + " metadata '" + kPlanMetadataKey + "'");
}

LoadedStudent load_model_or_student(const std::string& path, const std::string& plan_path, uint64_t seed,
                                    torch::Device device, Precision precision) {
    LoadedStudent out;
    auto& lm = out.loaded;
    lm.folder = find_model_folder(path);
    const WanConfig cfg = read_model_config(lm.folder);
    auto tensors = read_model_tensors(lm.folder, &lm.metadata);
    if (!tensors.empty()) lm.checkpoint_dtype = tensors.begin()->second.scalar_type();
    const auto stored = plan_from_metadata(lm.metadata, lm.folder.weights_path);
    if (!plan_path.empty()) {
        out.plan = AttentionPlan::load(plan_path);
        out.plan_source = plan_path;
    } else if (stored) {
        out.plan = stored;
        out.plan_source = lm.folder.weights_path + " metadata";
    }
    lm.model = WanModel(cfg);
    StrictLoadOptions opts;
    if (out.plan) {
        validate_plan(*out.plan, cfg);
        apply_plan(lm.model, *out.plan, seed);
        // Per block: the stored plan's entry == the plan's -> its phi must all be in the checkpoint; a block that the
        // checkpoint converted otherwise -> error (phi trained for R=2 must not silently run an R=4 block); a block
        // the checkpoint left softmax (or a teacher) -> phi drawn from the seed.
        const int64_t D = cfg.head_dim();
        for (int64_t i = 0; i < cfg.num_layers; ++i) {
            const auto& want = out.plan->blocks[i];
            const auto prefix = phi_prefix(i);
            bool present = false;
            for (auto it = tensors.lower_bound(prefix); it != tensors.end() && it->first.rfind(prefix, 0) == 0; ++it)
                present = true;
            const bool same = stored && stored->blocks[i].normalized(D) == want.normalized(D);
            if (present && !same)
                fail("{}: block {} holds feature maps trained for '{}', but the plan ({}) asks for '{}'; load the student "
                     "under its own plan, or start from the teacher",
                     lm.folder.weights_path, i, stored ? stored->blocks[i].normalized(D).describe() : std::string("?"),
                     out.plan_source, want.normalized(D).describe());
            if (want.kind == AttentionKind::Softmax) continue;
            const bool has_params = !lm.model->block(i)->self_attn->core()->parameters().empty();
            if (!same) opts.allow_missing_prefixes.push_back(prefix);
            if (!present && has_params) out.phi_initialised = true;
        }
    }
    load_state_dict_strict(*lm.model, tensors, opts, lm.folder.weights_path);
    lm.model->to(device);
    lm.model->set_precision(precision);
    return out;
}

}  // namespace surgeon
