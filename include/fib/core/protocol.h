// The protocol's limits, in one place: the server's framing and error lines
// read them, and so do the tests; docs_check holds the docs to them.
#pragma once

#include <cstddef>

namespace fib {

// The longest request line the server accepts, counting a '\r' before its
// '\n'. A request is one number, so anything near this long is not one.
inline constexpr std::size_t kMaxRequestLineBytes = 4095;
// The longest run of bytes without a newline taken as a request (from a
// client that has never sent a newline; see LineFramer).
inline constexpr std::size_t kMaxUnterminatedRequestBytes = 32;

}  // namespace fib
