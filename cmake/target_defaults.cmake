# Warnings, hardening and sanitizers are attached to our own targets by this
# function, never set globally.

set(FIB_SERVER_SANITIZER "" CACHE STRING
    "Sanitizers for every target of the project: address,undefined or thread (empty: none)")
option(FIB_SERVER_FUZZ "Build the libFuzzer harness (needs clang)" OFF)
# Debian's hardening flags (what `DEB_BUILD_MAINT_OPTIONS=hardening=+all
# dpkg-buildflags` gives on Debian 12), in every build and not only the
# package's: the binary the tests run, `cmake --install` installs and
# `cpack -G DEB` packs is the same one, and they cost nothing measurable
# (bench/cpu_per_request.sh, 21 alternating rounds: the same median CPU per
# request with and without, in thread and coroutine mode, within the spread
# of two copies of one binary).
option(FIB_SERVER_HARDENING "Stack protector, _FORTIFY_SOURCE=2, PIE, full RELRO (-z relro -z now)" ON)

function(fib_server_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
  if(FIB_SERVER_HARDENING)
    # -fPIE rather than CMake's POSITION_INDEPENDENT_CODE, which compiles the
    # static libraries with -fPIC: they only ever go into executables.
    target_compile_options(${target} PRIVATE -fstack-protector-strong -Wformat -Werror=format-security -fPIE)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
      # Full RELRO: relocations resolved at start, then made read-only.
      target_link_options(${target} PRIVATE -pie LINKER:-z,relro LINKER:-z,now)
    endif()
    # Checked string and memory functions. They need optimization (glibc warns
    # without), are left to the caller's flags when those set it already, and
    # not used under sanitizers, whose own checks they would bypass.
    string(TOUPPER "${CMAKE_BUILD_TYPE}" build_type)
    if(NOT FIB_SERVER_SANITIZER AND NOT "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${build_type}}" MATCHES "_FORTIFY_SOURCE")
      target_compile_definitions(${target} PRIVATE $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
    endif()
  endif()
  if(FIB_SERVER_SANITIZER)
    # Any report is fatal, so a test that triggers one fails.
    target_compile_options(${target} PRIVATE -fsanitize=${FIB_SERVER_SANITIZER} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${FIB_SERVER_SANITIZER})
    target_compile_definitions(${target} PRIVATE FIB_SERVER_SANITIZED=1)
    if(FIB_SERVER_SANITIZER MATCHES "thread")
      target_compile_definitions(${target} PRIVATE FIB_SERVER_TSAN=1)
    endif()
  endif()
  if(FIB_SERVER_FUZZ)
    # Coverage instrumentation for the fuzzer; the harness adds the driver.
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
endfunction()
