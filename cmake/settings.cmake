# Interface targets carrying the language standard, warnings and sanitizers.
set(CMAKE_CXX_STANDARD 23)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS ON)   # GNU statement expressions in CDI_TRY
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

add_library(cdi_settings INTERFACE)
find_package(Threads REQUIRED)
target_link_libraries(cdi_settings INTERFACE Threads::Threads)
target_compile_definitions(cdi_settings INTERFACE _FILE_OFFSET_BITS=64)
if(CDI_SANITIZE)
  target_compile_options(cdi_settings INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                -fno-sanitize-recover=undefined)
  target_link_options(cdi_settings INTERFACE -fsanitize=address,undefined)
  # g++ 12 reports false maybe-uninitialized warnings inside libstdc++ and Catch2 when the
  # sanitizers instrument them; the normal build keeps the warning as an error.
  target_compile_options(cdi_settings INTERFACE -Wno-maybe-uninitialized)
endif()

# libFuzzer (tests/fuzz, run.sh): clang only. The whole project is instrumented for coverage and
# ASan/UBSan without libFuzzer's main, so a fuzz target links the real cdi_import_core; the targets
# add -fsanitize=fuzzer themselves.
if(CDI_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CDI_FUZZ needs clang (libFuzzer), e.g. -DCMAKE_CXX_COMPILER=clang++-16; see tests/fuzz/run.sh")
  endif()
  if(CDI_SANITIZE)
    message(FATAL_ERROR "CDI_FUZZ already builds with ASan+UBSan; leave CDI_SANITIZE off")
  endif()
  set(CDI_FUZZ_SANITIZERS -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(cdi_settings INTERFACE -fsanitize=fuzzer-no-link ${CDI_FUZZ_SANITIZERS})
  target_link_options(cdi_settings INTERFACE -fsanitize=address,undefined)
endif()
# clang >= 16 is needed for libstdc++ 12's <expected>; clang < 19 still reports __cpp_concepts as
# 201907, which hides std::expected. Every target (also those without cdi_settings).
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 19)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wno-macro-redefined> $<$<COMPILE_LANGUAGE:CXX>:-D__cpp_concepts=202002L>)
endif()

add_library(cdi_warnings INTERFACE)
# -Wno-missing-field-initializers: plain-facts structs (io::ReaderInfo, SinkInfo) grow fields with
# default member initializers; positional initialisers of the older fields stay valid.
target_compile_options(cdi_warnings INTERFACE -Wall -Wextra -Werror -Wno-error=deprecated-declarations
                                              -Wno-missing-field-initializers)
