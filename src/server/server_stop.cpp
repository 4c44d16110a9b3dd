// The server's stop: what stop() starts at once, and the supervisor thread
// that reports statistics until then and enforces the stop's bounds after.
#include <sys/socket.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "fib/core/plural.h"
#include "server_parts.h"

namespace fib {

namespace {

// A stop wakes connections blocked in a receive (see Engine::wake), again
// and again, further apart each time (the first pause, doubling to the
// last), until every connection has ended. Past the shutdown timeout one
// more round makes sends in progress start again under the short timeout;
// from then on the repeats are rare, so that they do not keep restarting
// that timeout.
constexpr std::chrono::milliseconds kWakeRepeatFirst{5};
constexpr std::chrono::milliseconds kWakeRepeatMax{100};
constexpr std::chrono::milliseconds kWakeRepeatAfterTimeout{1000};

// The statistics line: "stats: 3 connections open, ...".
class StatsReporter {
 public:
  explicit StatsReporter(const ServerParts& server) : server_(server) {}

  void report(bool final) {
    const ServerStats now = server_.stats();
    const Clock::time_point time = Clock::now();
    const double seconds = to_seconds(time - last_time_);
    const std::uint64_t requests = now.replies.replies(), errors = now.replies.error_lines();
    const double rps = seconds > 0 ? static_cast<double>(requests - last_requests_) / seconds : 0;
    spdlog::info(
        "stats{}: {} connection{} open, {} accepted, {} refused, {} request{} served ({:.0f} req/s), {} error{}",
        final ? " at shutdown" : "", now.open, plural_s(now.open), now.accepted, now.refused_total(), requests,
        plural_s(requests), rps, errors, plural_s(errors));
    last_time_ = time;
    last_requests_ = requests;
  }

 private:
  const ServerParts& server_;
  Clock::time_point last_time_ = Clock::now();
  std::uint64_t last_requests_ = 0;
};

// Wakes connections until every one has ended; at the shutdown timeout
// gives up on requests not answered yet and lets sends take at most
// StopState::kGrace more.
void enforce_stop(Engine& engine, ConnectionBook& book, StopState& stop, ComputeGate& gate,
                  std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = stop.answer_by();
  book.stopping();
  std::chrono::milliseconds pause = kWakeRepeatFirst;
  bool abandoned = false;
  engine.wake();
  for (;;) {
    const Clock::time_point next = Clock::now() + pause;
    if (book.wait_until_all_ended(abandoned ? next : std::min(next, deadline))) return;
    if (!abandoned && Clock::now() >= deadline) {
      abandoned = true;
      stop.abandon();
      gate.wake_all();  // requests waiting for a turn give up too
      engine.abandon();
      const std::uint64_t open = book.open();
      spdlog::warn(
          "{} connection{} still open after {} ms: requests not answered yet are given up, and {} close{} "
          "within {} ms",
          open, plural_s(open), timeout.count(), open == 1 ? "it" : "they", open == 1 ? "s" : "",
          StopState::kGrace.count());
    }
    pause = abandoned ? kWakeRepeatAfterTimeout : std::min(pause * 2, kWakeRepeatMax);
    engine.wake();
  }
}

}  // namespace

// Takes no lock, which hundreds of connection threads may be queueing for
// on a busy machine: connections learn of the stop, the listener closes
// and the engine is told at once; the supervisor does the rest.
void ServerParts::stop() {
  if (stop_called.exchange(true)) return;
  stop_state.begin(Clock::now() + config.shutdown_timeout);
  book.tell_backlog_stopping(listener.get());
  ::shutdown(listener.get(), SHUT_RD);  // wakes a blocked accept; new clients are refused from here on
  engine->stop();
  stop_posted.release();
}

// Until a stop: a statistics line every stats_interval (if set). From the
// stop: enforces it. Last: the statistics at shutdown, once everything has
// ended.
void ServerParts::supervise() {
  StatsReporter reporter(*this);
  const bool reporting = config.stats_interval.count() > 0;
  // Until stop() has posted, not merely begun: what it wrote before posting
  // is read below.
  if (!reporting) stop_posted.acquire();
  while (reporting && !stop_posted.try_acquire_for(config.stats_interval)) reporter.report(false);
  enforce_stop(*engine, book, stop_state, gate, config.shutdown_timeout);
  finished.acquire();
  if (reporting) reporter.report(true);
}

}  // namespace fib
