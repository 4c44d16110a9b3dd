// The CPU time of an event loop's thread, for statistics: its clock while
// it runs, then what it read last, and never less than a reader saw before
// (a counter only goes up).
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

namespace fib {

class LoopClock {
 public:
  // On the loop's thread, as it starts and as it ends.
  void start();
  void stop();
  // From any thread.
  std::uint64_t cpu_ns() const;

 private:
  std::atomic<bool> running_{false};
  clockid_t clock_{};
  std::atomic<std::uint64_t> at_end_{0};
  mutable std::atomic<std::uint64_t> reported_{0};
};

}  // namespace fib
