# Finds standalone Asio (Debian's libasio-dev: header-only, no Boost), which
# installs no CMake package of its own. Defines Asio::Asio.
find_path(Asio_INCLUDE_DIR NAMES asio.hpp)
if(Asio_INCLUDE_DIR AND EXISTS "${Asio_INCLUDE_DIR}/asio/version.hpp")
  file(STRINGS "${Asio_INCLUDE_DIR}/asio/version.hpp" _asio_version_line REGEX "^#define ASIO_VERSION [0-9]+")
  string(REGEX REPLACE "^#define ASIO_VERSION ([0-9]+).*" "\\1" _asio_version "${_asio_version_line}")
  math(EXPR _asio_major "${_asio_version} / 100000")
  math(EXPR _asio_minor "${_asio_version} / 100 % 1000")
  math(EXPR _asio_patch "${_asio_version} % 100")
  set(Asio_VERSION "${_asio_major}.${_asio_minor}.${_asio_patch}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Asio REQUIRED_VARS Asio_INCLUDE_DIR VERSION_VAR Asio_VERSION)

if(Asio_FOUND AND NOT TARGET Asio::Asio)
  add_library(Asio::Asio INTERFACE IMPORTED)
  set_target_properties(Asio::Asio PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${Asio_INCLUDE_DIR}")
  # Standalone, without Boost; no deprecated interfaces. C++20 coroutines:
  # Asio 1.22 finds them by itself with GCC only, and looks for clang's in
  # <experimental/coroutine>; clang 14 (and clang-tidy) has the standard ones.
  # Aligned allocation decided once for every file: Asio 1.22 detects it from
  # a macro of libstdc++'s that is not yet defined in a file whose first
  # include is Asio's, and a file that allocates one way and one that frees
  # the other way (a handler posted from a thread outside Asio) disagree.
  target_compile_definitions(Asio::Asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED ASIO_HAS_CO_AWAIT=1
                                                  ASIO_HAS_STD_ALIGNED_ALLOC=1)
  target_link_libraries(Asio::Asio INTERFACE Threads::Threads)
endif()
mark_as_advanced(Asio_INCLUDE_DIR)
