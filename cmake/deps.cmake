# Third-party dependencies from Debian packages (CLI11, nlohmann-json, GoogleTest, stb). On machines without
# them (the GPU machine has no Debian dev packages and no network), SURGEON_VENDORED_DEPS may point to a folder
# with include/ and lib/ copied from a Debian machine (scripts/gpu_bench.sh carries one as .deps/).
set(SURGEON_VENDORED_DEPS "" CACHE PATH "Folder with include/ and lib/ of header-only/static deps")
if(SURGEON_VENDORED_DEPS)
  set(_inc ${SURGEON_VENDORED_DEPS}/include)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${_inc})
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${_inc})
  if(EXISTS ${SURGEON_VENDORED_DEPS}/lib/libgtest.a)
    find_package(Threads REQUIRED)
    add_library(GTest::gtest STATIC IMPORTED)
    set_target_properties(GTest::gtest PROPERTIES IMPORTED_LOCATION ${SURGEON_VENDORED_DEPS}/lib/libgtest.a
                          INTERFACE_INCLUDE_DIRECTORIES ${_inc} INTERFACE_LINK_LIBRARIES Threads::Threads)
    add_library(GTest::gtest_main STATIC IMPORTED)
    set_target_properties(GTest::gtest_main PROPERTIES IMPORTED_LOCATION ${SURGEON_VENDORED_DEPS}/lib/libgtest_main.a
                          INTERFACE_LINK_LIBRARIES GTest::gtest)
    set(GTest_FOUND TRUE)
  endif()
else()
  find_package(nlohmann_json REQUIRED)
  find_package(CLI11 REQUIRED)
endif()

# sentencepiece (the umT5 tokenizer of src/text): Debian's libsentencepiece-dev, or the header and shared library
# copied into SURGEON_VENDORED_DEPS by scripts/make_deps.sh.
find_path(SURGEON_SENTENCEPIECE_INCLUDE sentencepiece_processor.h HINTS ${SURGEON_VENDORED_DEPS}/include)
find_library(SURGEON_SENTENCEPIECE_LIB NAMES sentencepiece HINTS ${SURGEON_VENDORED_DEPS}/lib)
if(NOT SURGEON_SENTENCEPIECE_INCLUDE OR NOT SURGEON_SENTENCEPIECE_LIB)
  message(FATAL_ERROR "sentencepiece not found: install libsentencepiece-dev (scripts/setup.sh does)")
endif()
add_library(SentencePiece::SentencePiece UNKNOWN IMPORTED)
set_target_properties(SentencePiece::SentencePiece PROPERTIES IMPORTED_LOCATION ${SURGEON_SENTENCEPIECE_LIB}
                      INTERFACE_INCLUDE_DIRECTORIES ${SURGEON_SENTENCEPIECE_INCLUDE})
