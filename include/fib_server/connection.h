// One client's receive / frame / reply / send loop, the body of the Go
// server's goroutine. Runs on whichever thread calls it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

#include "fib_server/request_handler.h"

namespace fib {

// When a stopping server gives up on requests not yet started. Set once, by
// any thread; read before every request, at the cost of one relaxed load
// until it is set.
class StopDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  void set(Clock::time_point when) { at_.store(when.time_since_epoch().count(), std::memory_order_relaxed); }
  bool passed() const {
    const Clock::rep at = at_.load(std::memory_order_relaxed);
    return at != kNever && Clock::now().time_since_epoch().count() >= at;
  }

 private:
  static constexpr Clock::rep kNever = std::numeric_limits<Clock::rep>::max();
  std::atomic<Clock::rep> at_{kNever};
};

struct ConnectionResult {
  std::uint64_t requests = 0;  // replies sent, error lines included
  bool line_too_long = false;  // closed because a line passed the limit
  bool abandoned = false;      // the stop deadline passed with requests unanswered
  int error = 0;               // errno that ended it, 0 for a clean end of stream
};

// Serves `fd` until the client closes its side, the connection fails, a line
// is too long, or `deadline` passes. Every request received before the end
// is answered, in order; the replies to one read go out in one send, and
// replies waiting are sent before a slow request is started. Never throws
// for what a client does; does not close `fd`.
ConnectionResult serve_connection(int fd, const RequestHandler& handler, const StopDeadline& deadline);

}  // namespace fib
