// Stand-ins used when the build has no CUDA compiler: callers check cuda_kernels_compiled() first.
#include "kernels/attention_kernels.h"
#include "kernels/dit_kernels.h"
#include "kernels/rope.h"

namespace surgeon::kernels {
bool cuda_kernels_compiled() { return false; }
const char* rope_apply_cuda(const RopeParams&, void*) { return "Surgeon was built without CUDA kernels"; }
const char* hybrid_combine_cuda(const CombineParams&, void*) { return "Surgeon was built without CUDA kernels"; }
bool row_stats_supported(int64_t) { return false; }
const char* row_stats_cuda(const RowStatsParams&, void*) { return "Surgeon was built without CUDA kernels"; }
const char* norm_modulate_cuda(const NormModulateParams&, void*) { return "Surgeon was built without CUDA kernels"; }
const char* rms_norm_rope_cuda(const RmsNormRopeParams&, void*) { return "Surgeon was built without CUDA kernels"; }
}  // namespace surgeon::kernels
