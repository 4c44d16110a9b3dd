// One client's receive / frame / reply / send loop, the body of the Go
// server's goroutine. Runs on whichever thread calls it.
#pragma once

#include <cstdint>

#include "fib_server/request_handler.h"

namespace fib {

struct ConnectionResult {
  std::uint64_t requests = 0;    // replies sent, errors included
  bool line_too_long = false;    // closed because a line passed the limit
  int error = 0;                 // errno that ended it, 0 for a clean end of stream
};

// Serves `fd` until the client closes its side, the connection fails, or a
// line is too long. Every request received before the end is answered, in
// order; replies to one read go out in one send. Never throws for what a
// client does; does not close `fd`.
ConnectionResult serve_connection(int fd, const RequestHandler& handler);

}  // namespace fib
