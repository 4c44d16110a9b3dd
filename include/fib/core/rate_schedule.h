// When each request of an open-loop (fixed-rate) run is due. Pure: times in,
// times out.
//
// A total rate R over C connections gives each connection one request every
// C / R seconds; connection i starts i / C of an interval later than
// connection 0, so the requests of all connections are evenly spaced in time.
// Latency is measured from the due time, not from when the request was
// actually sent, so a server stall shows in the percentiles instead of
// silently slowing the client down (coordinated omission).
#pragma once

#include "fib/core/clock.h"

#include <chrono>
#include <cstdint>

namespace fib {

class RateSchedule {
 public:
  RateSchedule(Clock::time_point start, double total_rate, unsigned connections, unsigned index);

  // When request number k (from 0) of this connection is due.
  Clock::time_point due(std::uint64_t k) const;
  Clock::duration interval() const { return interval_; }

  // How many requests to send at `now`, given `sent` already sent and
  // `in_flight` of them unanswered with at most `pipeline` allowed. Behind
  // schedule, the backlog is worked off one free pipeline slot at a time,
  // never as a burst larger than the pipeline.
  std::uint64_t sendable(Clock::time_point now, std::uint64_t sent, std::uint64_t in_flight,
                         std::uint64_t pipeline) const;

 private:
  Clock::time_point first_;
  Clock::duration interval_;
};

}  // namespace fib
