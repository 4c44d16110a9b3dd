// Waiting in tests for what can be observed, with a bound.
#pragma once

#include <chrono>
#include <thread>

namespace fib::testing {

using namespace std::chrono_literals;

// Asks `holds` every millisecond until it is true, for at most `within`:
// whether it came true. What a test waits for is something it can observe
// (a count in the statistics, a line in a log), not a time it hopes is long
// enough.
template <typename Predicate>
bool eventually(Predicate holds, std::chrono::milliseconds within = 5s) {
  const auto until = std::chrono::steady_clock::now() + within;
  for (;;) {
    if (holds()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace fib::testing
