// One client's receive / frame / reply / send loop, the body of the Go
// server's goroutine. Runs on whichever thread calls it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fib/core/clock.h"
#include "fib/core/reply_counts.h"
#include "fib/core/request_handler.h"
#include "fib/core/session.h"

namespace fib {

// How a stop reaches the connections. The server sets it; every connection
// thread reads it with relaxed loads, one per receive and one per request
// (and one per kCancelCheckAt-sized piece of a long computation), so it
// costs nothing until it is set.
class StopState {
 public:
  // Stop: connections answer what they have read, send the stopping line and
  // close, lingering for their clients at most until `close_by`.
  void begin(Clock::time_point close_by) {
    close_by_.store(close_by.time_since_epoch().count(), std::memory_order_relaxed);
    stopping_.store(true, std::memory_order_release);
  }
  // The shutdown timeout has passed: requests are given up, running ones included.
  void abandon() { abandon_.store(true, std::memory_order_relaxed); }

  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // Set and read by receive_some: true once a receive is to be interrupted.
  const std::atomic<bool>& stopping_flag() const { return stopping_; }
  const std::atomic<bool>& abandon_flag() const { return abandon_; }
  // Once stopping() has been seen.
  Clock::time_point close_by() const {
    (void)stopping_.load(std::memory_order_acquire);  // pairs with begin(): close_by_ is set
    return Clock::time_point(Clock::duration(close_by_.load(std::memory_order_relaxed)));
  }

 private:
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abandon_{false};
  std::atomic<Clock::rep> close_by_{0};
};

// Adds to a running total that one thread writes and any thread reads: a
// plain load and store, no locked instruction.
inline void add(std::atomic<std::uint64_t>& total, std::int64_t n) {
  total.store(total.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(n), std::memory_order_relaxed);
}

// What a connection has done so far (in coroutine mode, an event loop's
// connections), for live statistics and metrics. Written only by the thread
// serving it, once per send (never per request); read by any thread. Aligned
// to cache lines of its own so that connections never slow each other down.
struct alignas(64) ConnectionCounters {
  std::atomic<std::uint64_t> answers{0};
  std::array<std::atomic<std::uint64_t>, kErrorKinds> errors{};                 // error lines, by ErrorKind
  std::array<std::atomic<std::uint64_t>, kServiceTimeBuckets> service_times{};  // per bucket
  std::atomic<std::uint64_t> service_time_ns{0};

  // By the one writer: `sent` went out, `service` after the last byte of
  // the request it answers last arrived (all of them arrived in that receive).
  void count(const ReplyCounts& sent, Clock::duration service);
  // By any thread: adds what is counted here to `replies` and `times`.
  void add_to(ReplyCounts& replies, ServiceTimes& times) const;
};

struct ConnectionResult {
  enum class End {
    closed,         // the client closed its side (everything asked was answered)
    failed,         // a receive or send failed: `error` says why
    line_too_long,  // refused a line past LineFramer::kMaxLineBytes, then closed
    idle,           // no valid request within the idle timeout: told so, then closed
    stalled,        // replies stuck unsent for the idle timeout: the client stopped reading
    stopped,        // the server is stopping: what was read was answered (or given up
                    // past the shutdown timeout), then the stopping line, then closed
  };
  End end = End::closed;
  int error = 0;               // errno, for End::failed
  std::uint64_t requests = 0;  // replies sent, error lines included (not the last line of idle or stopped)
  std::uint64_t errors = 0;    // error lines sent, the same way
};

// The ways a connection ends: ConnectionResult::End's values, 0 to 5.
inline constexpr std::size_t kConnectionEnds = static_cast<std::size_t>(ConnectionResult::End::stopped) + 1;
std::string_view to_string(ConnectionResult::End end);

class ComputeGate;

struct ConnectionPolicy {
  const StopState* stop = nullptr;  // none: never stopped
  // A connection that completes no valid request for this long is told so
  // and closed; 0: never. The caller also sets it as the socket's receive
  // and send timeouts (the connection shortens the receive timeout while it
  // gets only errors or pieces of lines).
  std::chrono::milliseconds idle_timeout{0};
  ConnectionCounters* counters = nullptr;  // none: not published
  ComputeGate* gate = nullptr;             // slow requests wait their turn here; none: no limit
};

// How compute_slow() ended.
enum class Computed {
  answered,     // the answer is in the session's output
  given_up,     // the server stopped waiting for it (see Session::compute)
  client_gone,  // the client reset the connection: it would never read the answer
};

// Computes the slow request `session` stopped at, on the calling thread, once
// policy.gate gives it a turn. Gives up when the server does (a stop past its
// timeout) or when the client on `fd` resets the connection, which is looked
// at before waiting for a turn and every few milliseconds of the computation:
// on a shared machine, work for a client that has gone holds up everyone
// else. A client that only ended its side (half-close) is still answered.
Computed compute_slow(Session& session, int fd, const ConnectionPolicy& policy);

// How long, and how many bytes, the graceful close after a connection's
// last line (ending `how`) keeps reading and discarding at most, so that
// closing with unread input does not reset the connection before the client
// has read its replies. A stop lingers until StopState::close_by().
struct CloseLimits {
  Clock::time_point until;
  std::size_t max_bytes;
};
CloseLimits goodbye_close_limits(ConnectionResult::End how, const StopState* stop);

// Serves `fd` until the client closes its side, the connection fails, a line
// is too long, it idles or stalls past the idle timeout, or the server stops.
// Every request read is answered, in order (at a stop, the last line says
// that what follows was not), and replies waiting are sent before a slow
// request is started. A stop is seen at once by a thread blocked in a
// receive when a signal interrupts it (receive_some with the stopping flag).
// Ends with a graceful close, so that no reply sent is lost to a reset.
// Never throws for what a client does; does not close `fd`.
ConnectionResult serve_connection(int fd, const RequestHandler& handler, const ConnectionPolicy& policy);

}  // namespace fib
