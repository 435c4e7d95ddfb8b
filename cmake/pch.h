// Precompiled header shared by every torch-facing target (see cmake/torch.cmake).
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <fmt/format.h>
#include <map>
#include <string>
#include <vector>
