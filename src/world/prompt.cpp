// Prompt grammar: spec -> words, and a small recursive-descent parser back from words to spec.
#include "world/prompt.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/error.h"

namespace surgeon::world {
namespace {

std::string speed_word(Speed s) { return s == Speed::Fast ? "fast" : "slowly"; }

std::string object_phrase(const ObjectSpec& o) {
    std::string s = "a " + to_string(o.size) + " " + to_string(o.colour) + " " + to_string(o.shape) + " ";
    switch (o.motion) {
        case Motion::Still: return s + "staying still";
        case Motion::Bouncing: return s + "bouncing " + speed_word(o.speed);
        default: return s + "moving " + to_string(o.motion) + " " + speed_word(o.speed);
    }
}

std::string background_phrase(const BackgroundSpec& b) {
    if (b.kind == BackgroundKind::Solid) return to_string(b.first);
    return to_string(b.first) + " to " + to_string(b.second) + " " + to_string(b.kind) + " gradient";
}

std::vector<std::string> split_words(const std::string& text) {
    std::string t = text;
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
    while (!t.empty() && (t.back() == '.' || std::isspace(static_cast<unsigned char>(t.back())))) t.pop_back();
    std::istringstream in(t);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    return words;
}

class Parser {
public:
    Parser(std::vector<std::string> words, const std::string& text) : w_(std::move(words)), text_(text) {}

    WorldSpec parse() {
        WorldSpec spec;
        spec.objects.push_back(object());
        expect("on");
        expect("a");
        spec.background = background();
        expect("background");
        if (pos_ < w_.size()) {
            expect("and");
            spec.objects.push_back(object());
        }
        if (pos_ < w_.size()) bad("end of prompt");
        return spec;
    }

private:
    const std::string& next(const char* expected) {
        if (pos_ >= w_.size()) fail("prompt \"{}\" ends early: expected {}", text_, expected);
        return w_[pos_++];
    }
    [[noreturn]] void bad(const char* expected) {
        fail("prompt \"{}\": word {} '{}' is not {} (grammar: a <size> <colour> <shape> <motion> on a "
             "<background> background [and a ...])",
             text_, pos_ + 1, pos_ < w_.size() ? w_[pos_] : w_.back(), expected);
    }
    void expect(const char* word) {
        if (pos_ >= w_.size()) fail("prompt \"{}\" ends early: expected '{}'", text_, word);
        if (w_[pos_] != word) bad((std::string("'") + word + "'").c_str());
        ++pos_;
    }
    template <typename F>
    auto attribute(F parse_fn, const char* what) {
        const size_t at = pos_;
        const std::string& w = next(what);
        try {
            return parse_fn(w);
        } catch (const Error&) {
            pos_ = at;
            bad(what);
        }
    }
    Speed speed() {
        const std::string& w = next("a speed (slowly or fast)");
        if (w == "slowly") return Speed::Slow;
        if (w == "fast") return Speed::Fast;
        --pos_;
        bad("a speed (slowly or fast)");
    }
    ObjectSpec object() {
        expect("a");
        ObjectSpec o;
        o.size = attribute(parse_size, "a size");
        o.colour = attribute(parse_colour, "an object colour");
        o.shape = attribute(parse_shape, "a shape");
        const std::string& m = next("a motion");
        if (m == "staying") {
            expect("still");
            o.motion = Motion::Still;
        } else if (m == "bouncing") {
            o.motion = Motion::Bouncing;
            o.speed = speed();
        } else if (m == "moving") {
            o.motion = attribute(parse_motion, "a direction (left, right, up, down)");
            if (o.motion == Motion::Still || o.motion == Motion::Bouncing) {
                --pos_;
                bad("a direction (left, right, up, down)");
            }
            o.speed = speed();
        } else {
            --pos_;
            bad("a motion (moving, bouncing, staying)");
        }
        return o;
    }
    BackgroundSpec background() {
        BackgroundSpec b;
        b.first = b.second = attribute(parse_background_colour, "a background colour");
        if (pos_ < w_.size() && w_[pos_] == "to") {
            ++pos_;
            b.second = attribute(parse_background_colour, "a background colour");
            const std::string& k = next("horizontal or vertical");
            if (k == "horizontal") {
                b.kind = BackgroundKind::HorizontalGradient;
            } else if (k == "vertical") {
                b.kind = BackgroundKind::VerticalGradient;
            } else {
                --pos_;
                bad("horizontal or vertical");
            }
            expect("gradient");
        }
        return b;
    }

    std::vector<std::string> w_;
    const std::string& text_;
    size_t pos_ = 0;
};

}  // namespace

std::string prompt(const WorldSpec& spec) {
    SURGEON_CHECK(!spec.objects.empty() && spec.objects.size() <= 2, "a world sample has 1 or 2 objects, got {}",
                  spec.objects.size());
    std::string s = object_phrase(spec.objects[0]) + " on a " + background_phrase(spec.background) + " background";
    if (spec.objects.size() == 2) s += " and " + object_phrase(spec.objects[1]);
    return s;
}

WorldSpec parse_prompt(const std::string& text) {
    auto words = split_words(text);
    SURGEON_CHECK(!words.empty(), "empty prompt");
    return Parser(std::move(words), text).parse();
}

const std::vector<std::string>& grammar_words() {
    static const std::vector<std::string> words = [] {
        std::vector<std::string> w = {"a",      "and",    "on",      "background", "to",    "horizontal",
                                      "vertical", "gradient", "moving", "bouncing",  "staying", "still",
                                      "slowly", "fast"};
        for (int i = 0; i < kNumSizes; ++i) w.push_back(to_string(static_cast<Size>(i)));
        for (int i = 0; i < kNumColours; ++i) w.push_back(to_string(static_cast<Colour>(i)));
        for (int i = 0; i < kNumShapes; ++i) w.push_back(to_string(static_cast<Shape>(i)));
        for (int i = 1; i < kNumMotions - 1; ++i) w.push_back(to_string(static_cast<Motion>(i)));  // directions
        for (int i = 0; i < kNumBackgroundColours; ++i) w.push_back(to_string(static_cast<BackgroundColour>(i)));
        return w;
    }();
    return words;
}

}  // namespace surgeon::world
