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

add_library(cdi_warnings INTERFACE)
# -Wno-missing-field-initializers: plain-facts structs (io::ReaderInfo, SinkInfo) grow fields with
# default member initializers; positional initialisers of the older fields stay valid.
target_compile_options(cdi_warnings INTERFACE -Wall -Wextra -Werror -Wno-error=deprecated-declarations
                                              -Wno-missing-field-initializers)
