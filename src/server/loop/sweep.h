// What the two event-loop engines share to keep deadlines with no timer per
// request: each connection says what it waits for and until when (a Wait),
// and a sweeper per loop looks at every connection each tick (sweep_tick())
// and cuts the waits past their deadline (sweep()).
#pragma once

#include <algorithm>
#include <chrono>

#include "rules/rules.h"

namespace fib {

// How often a sweeper looks at its connections: a twentieth of the idle
// timeout, kept between these bounds, and often while stopping. A sweep
// costs a few nanoseconds per connection.
inline constexpr Clock::duration kSweepMin = std::chrono::milliseconds(5);
inline constexpr Clock::duration kSweepMax = std::chrono::milliseconds(25);
inline constexpr Clock::duration kSweepStopping = std::chrono::milliseconds(5);

// A twentieth of the idle timeout, between kSweepMin and `most`; `most`
// without an idle timeout.
inline Clock::duration sweep_tick(const IdleRule& idle, Clock::duration most = kSweepMax) {
  return idle.on() ? std::clamp<Clock::duration>(idle.timeout / 20, kSweepMin, most) : most;
}

// What one connection waits for, until when, and whether the sweeper cut it.
struct Wait {
  enum class For { nothing, receive, send, parked };

  void start(For what_now, Clock::time_point until) {
    what = what_now;
    deadline = until;
    expired = false;
  }
  // The wait is over: true when the sweeper cut it past its deadline.
  bool end() {
    what = For::nothing;
    return expired;
  }

  For what = For::nothing;
  Clock::time_point deadline = Clock::time_point::max();
  bool expired = false;  // the sweeper cut the wait: past its deadline
};

// Cuts the waits of `connections` (each with a `wait`) past their deadline
// at `now`, sends' at `send_limit` at the latest (a stop's): marks each
// expired and calls cut(connection), which cancels what it waits for and
// returns false when nothing is in flight to cancel yet (the next sweep
// tries again). Calls at_rest(connection) for the waits not past their
// deadline. Either may end its connection: the next one is found first.
template <typename Connections, typename Cut, typename AtRest>
void sweep(Connections& connections, Clock::time_point now, Clock::time_point send_limit, Cut cut, AtRest at_rest) {
  for (auto next = connections.begin(); next != connections.end();) {
    auto& connection = *next++;
    Wait& wait = connection.wait;
    if (wait.what == Wait::For::nothing || wait.expired) continue;
    const Clock::time_point until = wait.what == Wait::For::send ? std::min(wait.deadline, send_limit) : wait.deadline;
    if (now < until) {
      at_rest(connection);
      continue;
    }
    wait.expired = true;
    if (!cut(connection)) wait.expired = false;
  }
}

}  // namespace fib
