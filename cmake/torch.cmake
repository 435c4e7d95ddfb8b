# libtorch from the PyTorch wheel: CMAKE_PREFIX_PATH=$(python -c 'import torch;print(torch.utils.cmake_prefix_path)').
# scripts/setup.sh makes a venv outside the clone and passes it in.
find_package(Torch REQUIRED)
# One interface target carrying torch's flags, plus a shared precompiled header (libtorch headers dominate build time).
add_library(surgeon_torch INTERFACE)
target_link_libraries(surgeon_torch INTERFACE ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json)
# libtorch ships fmt 12 headers that shadow Debian's libfmt-dev (fmt 9) on the include path, so fmt is used
# header-only from libtorch's copy; linking Debian's libfmt would mix two ABIs.
target_compile_definitions(surgeon_torch INTERFACE FMT_HEADER_ONLY=1)
target_compile_options(surgeon_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${TORCH_CXX_FLAGS}>)

add_library(surgeon_pch STATIC ${PROJECT_SOURCE_DIR}/cmake/pch.cpp)
target_link_libraries(surgeon_pch PUBLIC surgeon_torch)
target_precompile_headers(surgeon_pch PRIVATE ${PROJECT_SOURCE_DIR}/cmake/pch.h)

# Targets that include torch reuse the same PCH.
function(surgeon_use_torch_pch target)
  target_link_libraries(${target} PUBLIC surgeon_torch)
  target_precompile_headers(${target} REUSE_FROM surgeon_pch)
endfunction()
