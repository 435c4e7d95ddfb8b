// `surgeon plot --csv FILE --x COL --y COL --out FILE.png`: a line plot of two CSV columns (e.g. a training
// run's loss.csv), with axes, tick labels and a title.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/plot.h"
#include "core/video_io.h"

namespace surgeon::cli {

void register_plot_commands(CLI::App& app) {
    struct Args {
        std::string csv, x = "step", y = "loss", out, title;
        bool linear = false;
    };
    auto a = std::make_shared<Args>();
    auto* cmd = app.add_subcommand("plot", "Line plot of two columns of a CSV file (header row required) as PNG");
    cmd->add_option("--csv", a->csv, "CSV file with a header row")->required();
    cmd->add_option("--x", a->x, "x column")->capture_default_str();
    cmd->add_option("--y", a->y, "y column")->capture_default_str();
    cmd->add_option("--out", a->out, "output .png")->required();
    cmd->add_option("--title", a->title, "title (default: '<y> of <csv>')");
    cmd->add_flag("--linear", a->linear, "linear y axis (default: log)");
    cmd->callback([a]() {
        SURGEON_CHECK(a->out.size() > 4 && a->out.substr(a->out.size() - 4) == ".png", "--out must end in .png, got '{}'", a->out);
        check_input_file(a->csv, "--csv");
        check_output_path(a->out, {a->csv});
        std::ifstream in(a->csv);
        SURGEON_CHECK(in.good(), "{}: cannot open", a->csv);
        std::string line;
        SURGEON_CHECK(static_cast<bool>(std::getline(in, line)), "{}: empty file (expected a header row)", a->csv);
        auto split = [](const std::string& s) {
            std::vector<std::string> f;
            std::stringstream ss(s);
            std::string c;
            while (std::getline(ss, c, ',')) f.push_back(c);
            return f;
        };
        const auto header = split(line);
        auto col = [&](const std::string& name) {
            auto it = std::find(header.begin(), header.end(), name);
            SURGEON_CHECK(it != header.end(), "{}: no column '{}' (columns: {})", a->csv, name, line);
            return static_cast<size_t>(it - header.begin());
        };
        const size_t cx = col(a->x), cy = col(a->y);
        std::vector<double> xs, ys;
        for (int64_t row = 2; std::getline(in, line); ++row) {
            if (line.empty()) continue;
            const auto f = split(line);
            SURGEON_CHECK(f.size() == header.size(), "{}:{}: {} fields, header has {}", a->csv, row, f.size(), header.size());
            try {
                xs.push_back(std::stod(f[cx]));
                ys.push_back(std::stod(f[cy]));
            } catch (const std::exception&) {
                fail("{}:{}: not a number in '{}'", a->csv, row, line);
            }
        }
        LinePlotOptions o;
        o.title = a->title.empty() ? a->y + " of " + a->csv : a->title;
        o.x_label = a->x;
        o.y_label = a->y + (a->linear ? "" : " (log)");
        o.log_y = !a->linear;
        write_png(a->out, render_line_plot(xs, ys, o));
        std::printf("wrote %s (%zu points)\n", a->out.c_str(), xs.size());
    });
}

}  // namespace surgeon::cli
