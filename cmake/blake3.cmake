# BLAKE3: the official C implementation, as Debian ships it inside
# librust-blake3-dev (its c/ folder under /usr/share/cargo/registry), built
# here into an internal static library. Nothing of it is copied into this
# repository. BH_BLAKE3_DIR overrides where the c/ folder is.
set(BH_BLAKE3_DIR "" CACHE PATH "the c/ folder of the BLAKE3 sources")
if(NOT BH_BLAKE3_DIR)
  file(GLOB _blake3_headers /usr/share/cargo/registry/blake3-*/c/blake3.h)
  list(SORT _blake3_headers COMPARE NATURAL ORDER DESCENDING)
  list(GET _blake3_headers 0 _blake3_header)
  if(_blake3_header)
    get_filename_component(BH_BLAKE3_DIR ${_blake3_header} DIRECTORY)
  endif()
endif()
if(NOT BH_BLAKE3_DIR OR NOT EXISTS ${BH_BLAKE3_DIR}/blake3_dispatch.c)
  message(FATAL_ERROR "BLAKE3 C sources not found: install Debian's "
          "librust-blake3-dev (scripts/setup does) or set BH_BLAKE3_DIR")
endif()
message(STATUS "BLAKE3 sources: ${BH_BLAKE3_DIR}")

set(_b3 ${BH_BLAKE3_DIR})
set(BH_BLAKE3_SOURCES ${_b3}/blake3.c ${_b3}/blake3_dispatch.c
    ${_b3}/blake3_portable.c)
set(BH_BLAKE3_DEFS)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  # The unix assembly units: the dispatcher picks SSE2/SSE4.1/AVX2/AVX-512
  # at run time from cpuid.
  enable_language(ASM)
  list(APPEND BH_BLAKE3_SOURCES ${_b3}/blake3_sse2_x86-64_unix.S
       ${_b3}/blake3_sse41_x86-64_unix.S ${_b3}/blake3_avx2_x86-64_unix.S
       ${_b3}/blake3_avx512_x86-64_unix.S)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
  list(APPEND BH_BLAKE3_SOURCES ${_b3}/blake3_neon.c)
  list(APPEND BH_BLAKE3_DEFS BLAKE3_USE_NEON=1)
else()
  list(APPEND BH_BLAKE3_DEFS BLAKE3_NO_SSE2 BLAKE3_NO_SSE41 BLAKE3_NO_AVX2
       BLAKE3_NO_AVX512)
endif()
add_library(bhblake3 STATIC ${BH_BLAKE3_SOURCES})
target_include_directories(bhblake3 SYSTEM PUBLIC ${_b3})
target_compile_definitions(bhblake3 PRIVATE ${BH_BLAKE3_DEFS})
# Not our code: no -Werror, and no warnings we could fix.
target_compile_options(bhblake3 PRIVATE -w)
