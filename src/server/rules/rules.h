// What every connection obeys, whichever engine serves it: the stop, the
// idle rule, and the turns slow requests take.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "fib/core/clock.h"

namespace fib {

class ComputeGate;

// How a stop reaches the connections. The server sets it; connections read
// it with relaxed loads, one per receive and one per request (and one per
// piece of a long computation), so it costs nothing until it is set.
class StopState {
 public:
  // Past the shutdown timeout, what sends and graceful closes still get.
  static constexpr std::chrono::milliseconds kGrace{100};

  // Connections answer what they have read until `answer_by` (the shutdown
  // timeout from now), send the stopping line and close, lingering for their
  // clients at most a grace past it.
  void begin(Clock::time_point answer_by) {
    answer_by_.store(answer_by.time_since_epoch().count(), std::memory_order_relaxed);
    stopping_.store(true, std::memory_order_release);
  }
  // The shutdown timeout has passed: requests are given up, running ones included.
  void abandon() { abandon_.store(true, std::memory_order_relaxed); }

  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // For a blocking receive that a stop interrupts (receive_some).
  const std::atomic<bool>& stopping_flag() const { return stopping_; }
  const std::atomic<bool>& abandon_flag() const { return abandon_; }
  // Once stopping() has been seen: when requests not answered are given up,
  // and when the last connection is closed whatever its client does.
  Clock::time_point answer_by() const {
    (void)stopping_.load(std::memory_order_acquire);  // pairs with begin(): answer_by_ is set
    return Clock::time_point(Clock::duration(answer_by_.load(std::memory_order_relaxed)));
  }
  Clock::time_point close_by() const { return answer_by() + kGrace; }

 private:
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abandon_{false};
  std::atomic<Clock::rep> answer_by_{0};
};

// The idle rule: a connection that completes no valid request, or cannot
// send its replies, for `timeout` is closed (0: never). The one place a
// wait's deadline comes from, for every engine and the sweeper.
struct IdleRule {
  std::chrono::milliseconds timeout{0};

  bool on() const { return timeout.count() > 0; }
  // When a wait that started at `from` ends.
  Clock::time_point deadline(Clock::time_point from) const { return on() ? from + timeout : Clock::time_point::max(); }
};

struct ConnectionRules {
  const StopState* stop = nullptr;
  IdleRule idle;
  ComputeGate* gate = nullptr;  // slow requests wait their turn here (a limit of 0: none)
};

// Adds to a running total that one thread writes and any thread reads: a
// plain load and store, no locked instruction.
inline void add(std::atomic<std::uint64_t>& total, std::int64_t n) {
  total.store(total.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(n), std::memory_order_relaxed);
}

}  // namespace fib
