// `surgeon student`: a student folder from a teacher, a plan and (optionally) distilled feature maps.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "surgery/student.h"

namespace surgeon::cli {

void register_student(CLI::App& app) {
    struct Args {
        std::string teacher, out;
        StudentSpec spec;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("student", "Write a student folder: teacher weights + feature maps + attention plan");
    cmd->add_option("--teacher", a->teacher, "teacher model folder (synth or Wan)")->required();
    cmd->add_option("--plan", a->spec.plan, "attention plan JSON (e.g. from `surgeon plan knapsack`)")->required();
    cmd->add_option("--phi", a->spec.phi, "output folder of `surgeon distill` (default: phi drawn from --seed)");
    cmd->add_option("--seed", a->spec.seed, "seed of phi not taken from --phi")->check(unsigned_integer())->capture_default_str();
    cmd->add_option("--out", a->out, "the student folder to write")->required();
    cmd->callback([a]() {
        check_output_path(a->out, {a->spec.plan}, {a->teacher, a->spec.phi}, OutputKind::Folder);
        const auto plan = write_student(a->teacher, a->spec, a->out);
        std::printf("wrote %s: %lld of %zu blocks converted (%s)\n", a->out.c_str(),
                    static_cast<long long>(plan.num_converted()), plan.blocks.size(),
                    a->spec.phi.empty() ? "phi from the model folder where it has them, else drawn from --seed" : ("phi from " + a->spec.phi).c_str());
    });
}

}  // namespace surgeon::cli
