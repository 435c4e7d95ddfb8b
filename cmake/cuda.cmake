# CUDA is optional: compile Surgeon's kernels whenever nvcc exists (CI has the toolkit but no GPU),
# so the GPU build is proven to compile and link on every machine.
set(SURGEON_HAVE_CUDA OFF)
if(SURGEON_WITH_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES ${SURGEON_CUDA_ARCHS})
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(SURGEON_HAVE_CUDA ON)
    # Torch's CMake reads this instead of CMAKE_CUDA_ARCHITECTURES.
    if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
      set(ENV{TORCH_CUDA_ARCH_LIST} "9.0")
    endif()
  endif()
endif()
message(STATUS "Surgeon CUDA kernels: ${SURGEON_HAVE_CUDA}")
