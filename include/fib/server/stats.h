// A server's running totals and what its threads are doing, as
// Server::stats() reads them for the statistics line and the metrics.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "fib/core/reply_counts.h"
#include "fib/server/outcomes.h"

namespace fib {

struct ServerStats {
  std::uint64_t open = 0;                              // connections open now
  std::uint64_t accepted = 0;                          // connections accepted, refused ones included
  std::array<std::uint64_t, kRefusalKinds> refused{};  // by Refusal
  std::array<std::uint64_t, kConnectionEnds> ended{};  // connections served and closed, by End
  ReplyCounts replies;                                 // sent, the last line of a closing connection aside
  ServiceTimes service_times;                          // of those replies
  // Slow requests computing now, and waiting for a turn (--max-computing).
  std::uint64_t computing = 0, waiting_to_compute = 0;
  // A thread per connection: threads serving a connection, and parked ones.
  struct Threads {
    std::uint64_t busy = 0, parked = 0;
  };
  std::optional<Threads> threads;
  // Event loops: their threads and CPU time, and the workers with the slow
  // requests handed to them (computing or waiting for one); in the uring
  // mode, the receives that found every buffer of their loop taken, and
  // waited for the next round; in the coroutine mode, the connections
  // parked (at rest, with no coroutine).
  struct Loops {
    unsigned threads = 0, workers = 0;
    std::uint64_t cpu_ns = 0, at_workers = 0, buffer_shortages = 0, parked = 0;
    std::vector<std::uint64_t> open{};  // the connections each loop serves now
  };
  std::optional<Loops> loops;

  std::uint64_t refused_total() const;
};

}  // namespace fib
