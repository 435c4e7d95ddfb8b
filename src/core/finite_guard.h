// The last guard of a training loop before it checkpoints: a diverged state (NaN/Inf in any parameter or optimiser
// tensor) must never replace the last good checkpoint. One host sync per checkpoint, not per step.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace surgeon {

// Throws one line "<command>: training diverged at step <step>: NaN or Inf in <what> (the last checkpoint is kept;
// lower the learning rate, then --resume)" unless every floating-point tensor of `tensors` is finite.
void check_state_finite(const std::vector<torch::Tensor>& tensors, const std::string& command, int64_t step,
                        const std::string& what = "the weights");
// The same for a checkpoint's tensors, naming the first non-finite one.
void check_state_finite(const TensorMap& tensors, const std::string& command, int64_t step);

}  // namespace surgeon
