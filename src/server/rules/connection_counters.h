// What connections have sent, for live statistics and metrics: kept by the
// one thread serving them (a connection thread, or an event loop for all of
// its connections), once per send, never per request; read by any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "fib/core/clock.h"
#include "fib/core/reply_counts.h"

namespace fib {

// Aligned to cache lines of its own, so that connections never slow each
// other down.
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

}  // namespace fib
