// The `surgeon` command-line program: dispatch, and the one place that turns errors into a single line
// on stderr and a non-zero exit code.
#include <cstdio>

#include "cli/commands.h"
#include "cli/error_report.h"

int main(int argc, char** argv) {
    CLI::App app{"surgeon: attention surgery for Wan2.1 video diffusion transformers"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "Show help for every subcommand");
    using namespace surgeon::cli;
    register_inspect(app);
    register_forward(app);
    register_sample(app);
    register_compare(app);
    register_vae_commands(app);
    register_world_commands(app);
    register_plan_commands(app);
    register_synth_commands(app);
    register_plot_commands(app);
    register_distill(app);
    register_text_encode(app);
    register_student(app);
    register_surgery(app);
    register_finetune(app);
    // CLI11 would say "A subcommand is required" for a mistyped command.
    if (argc >= 2 && argv[1][0] != '-') {
        std::string names;
        bool known = false;
        for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
            known = known || sub->check_name(argv[1]);
            names += (names.empty() ? "" : ", ") + sub->get_name();
        }
        if (!known) {
            std::fprintf(stderr, "error: unknown command '%s' (commands: %s)\n", argv[1], names.c_str());
            return 2;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        const auto r = report_exception(std::current_exception());
        std::fprintf(stderr, "error: %s\n", r.line.c_str());
        return r.exit_code;
    } catch (...) {
        const auto r = report_exception(std::current_exception());
        std::fprintf(stderr, "error: %s\n", r.line.c_str());
        return r.exit_code;
    }
    return 0;
}
