// The world's prompt grammar and its inverse. Every attribute a video shows is in its prompt:
//   prompt := object " on a " background " background" [" and " object]
//   object := "a" size colour shape ("moving" left|right|up|down slowly|fast | "bouncing" slowly|fast | "staying still")
//   background := colour | colour " to " colour " horizontal gradient" | ... " vertical gradient"
#pragma once
#include <string>
#include <vector>

#include "world/world.h"

namespace surgeon::world {

// E.g. "a large red circle moving left fast on a gray background and a small blue square bouncing slowly".
std::string prompt(const WorldSpec& spec);
// Inverse of prompt(): attributes only (positions are not in the prompt and get the defaults of ObjectSpec).
// Case- and whitespace-insensitive; a trailing '.' is allowed. Throws surgeon::Error naming the bad word.
WorldSpec parse_prompt(const std::string& text);
// Every word the grammar can produce, in a fixed order (the tokenizer's vocabulary after <pad>, <eos>).
const std::vector<std::string>& grammar_words();

}  // namespace surgeon::world
