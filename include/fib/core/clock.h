// The one clock of the project, and conversions to and from the seconds
// people type and read. Pure.
#pragma once

#include <chrono>

namespace fib {

// Monotonic: for timeouts, deadlines, schedules and latencies.
using Clock = std::chrono::steady_clock;

// Seconds as a number, for printing and for rates.
inline double to_seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A number of seconds, as given on a command line.
inline Clock::duration from_seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace fib
