#include "fib/core/rate_schedule.h"

#include <algorithm>

namespace fib {

RateSchedule::RateSchedule(Clock::time_point start, double total_rate, unsigned connections, unsigned index)
    : interval_(std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(connections) / total_rate))) {
  first_ = start + interval_ * index / connections;
}

Clock::time_point RateSchedule::due(std::uint64_t k) const { return first_ + interval_ * static_cast<Clock::rep>(k); }

std::uint64_t RateSchedule::sendable(Clock::time_point now, std::uint64_t sent, std::uint64_t in_flight,
                                     std::uint64_t pipeline) const {
  if (now < first_ || in_flight >= pipeline) return 0;
  const auto elapsed = static_cast<std::uint64_t>((now - first_) / interval_) + 1;  // due so far
  return elapsed > sent ? std::min(elapsed - sent, pipeline - in_flight) : 0;
}

}  // namespace fib
