// One client's receive / frame / reply / send loop, the body of the Go
// server's goroutine. Runs on whichever thread calls it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string_view>

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

// What a connection has done so far, for live statistics. Written only by
// the connection's thread, as plain relaxed stores of its running totals
// once per send (never per request); read by any thread. Padded to a cache
// line of its own so that connections never slow each other down.
struct alignas(64) ConnectionCounters {
  std::atomic<std::uint64_t> requests{0};  // replies sent, error lines included
  std::atomic<std::uint64_t> errors{0};    // error lines sent
  std::atomic<bool> sending{false};        // in a send now (a stop closes those stuck)
};

struct ConnectionResult {
  enum class End {
    closed,         // the client closed its side (everything asked was answered)
    failed,         // a receive or send failed: `error` says why
    line_too_long,  // refused a line past LineFramer::kMaxLineBytes, then closed
    idle,           // no request completed within the idle timeout
    stalled,        // replies stuck unsent for the idle timeout: the client stopped reading
    abandoned,      // the stop deadline passed with requests not started
  };
  End end = End::closed;
  int error = 0;               // errno, for End::failed
  std::uint64_t requests = 0;  // replies sent, error lines included
  std::uint64_t errors = 0;    // error lines sent
};

std::string_view to_string(ConnectionResult::End end);

struct ConnectionPolicy {
  const StopDeadline* deadline = nullptr;  // none: never abandoned
  // A connection that completes no request for this long is closed; 0: never.
  // The caller also sets it as the socket's receive and send timeouts.
  std::chrono::milliseconds idle_timeout{0};
  ConnectionCounters* counters = nullptr;  // none: not published
};

// Serves `fd` until the client closes its side, the connection fails, a line
// is too long, it idles or stalls past the idle timeout, or the stop
// deadline passes. Every request received before the end is answered, in
// order; the replies to one read go out in one send, and replies waiting are
// sent before a slow request is started. Never throws for what a client
// does; does not close `fd`.
ConnectionResult serve_connection(int fd, const RequestHandler& handler, const ConnectionPolicy& policy);

}  // namespace fib
