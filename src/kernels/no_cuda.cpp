// Stand-ins used when the build has no CUDA compiler: callers check cuda_kernels_compiled() first.
#include "kernels/rope.h"

namespace surgeon::kernels {
bool cuda_kernels_compiled() { return false; }
const char* rope_apply_cuda(const RopeParams&, void*) { return "Surgeon was built without CUDA kernels"; }
}  // namespace surgeon::kernels
