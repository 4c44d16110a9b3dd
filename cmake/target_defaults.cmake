# Warnings and sanitizers are attached to our own targets by this function,
# never set globally.

set(FIB_SERVER_SANITIZER "" CACHE STRING
    "Sanitizers for every target of the project: address,undefined or thread (empty: none)")
option(FIB_SERVER_FUZZ "Build the libFuzzer harness (needs clang)" OFF)

function(fib_server_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
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
