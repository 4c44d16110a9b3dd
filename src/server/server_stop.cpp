// The server's stop: what stop() starts, and the supervisor thread that
// wakes connections until they have ended, bounds the stop, and logs the
// statistics.
#include <fcntl.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "event_loops.h"
#include "fib/core/plural.h"
#include "fib/core/request_handler.h"
#include "fib/net/thread_wake.h"
#include "fib/server/server.h"

namespace fib {

namespace {

// A stop wakes connection threads blocked in a receive (see thread_wake.h),
// again and again, further apart each time (the first pause, doubling to the
// last), until every connection has ended. Past the shutdown timeout one
// more round makes sends in progress start again under the short timeout;
// from then on the repeats are rare, so that they do not keep restarting
// that timeout.
constexpr std::chrono::milliseconds kWakeRepeatFirst{5};
constexpr std::chrono::milliseconds kWakeRepeatMax{100};
constexpr std::chrono::milliseconds kWakeRepeatAfterTimeout{1000};

}  // namespace

// Thread connections end under the lock and signal changed_; the event
// loops' count is read as it is, so a wait on it is a timed one.
bool Server::all_closed() const { return live_.empty() && (!loops_ || loops_->open() == 0); }

// Never takes the lock, which hundreds of connection threads may be
// queueing for on a busy machine: connections learn of the stop, the
// listener closes and the event loops are told at once; the supervisor does
// the rest.
void Server::stop() {
  if (stop_called_.exchange(true)) return;
  stop_.begin(Clock::now() + config_.shutdown_timeout + kStopGrace);
  backlog_told_ = tell_backlog_stopping();
  ::shutdown(listener_.get(), SHUT_RD);  // wakes the blocked accept; new clients are refused from here on
  if (loops_) loops_->stop();
  stop_posted_.release();
}

// The part of a stop that takes the lock, on the supervisor's thread.
void Server::begin_stopping(std::unique_lock<std::mutex>& lock) {
  lock.lock();
  stopping_ = true;
  stop_deadline_ = stop_.close_by() - kStopGrace;
  ended_[static_cast<std::size_t>(ConnectionResult::End::stopped)] += backlog_told_;
  changed_.notify_all();                                               // an accept loop backing off ends
  for (ConnectionThread* worker : parked_) worker->wake.notify_one();  // parked threads retire
}

// Clients that connected but were not accepted yet (sequential mode, or a
// burst) sent requests nobody read: they get the stopping line and a graceful
// close instead of the reset that shutting down the listener would send
// them. Never blocks: the listener turns non-blocking (a thread already
// blocked in accept stays blocked until the shutdown that follows). Returns
// how many were told.
std::uint64_t Server::tell_backlog_stopping() noexcept {
  std::uint64_t told = 0;
  const int flags = ::fcntl(listener_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(listener_.get(), F_SETFL, flags | O_NONBLOCK) != 0) return told;
  for (;;) {
    Endpoint peer;
    Fd fd = accept_connection(listener_.get(), &peer);
    if (!fd) return told;
    accepted_.fetch_add(1, std::memory_order_relaxed);
    ++told;
    hang_up(fd.get(), kStoppingReply);
  }
}

// Until a stop: a statistics line every stats_interval (if set). From the
// stop: wakes connection threads blocked in a receive until every connection
// has ended; at the shutdown timeout, gives up on requests not yet answered
// and lets sends take at most kStopGrace more. Last: the statistics at
// shutdown, once everything has ended.
void Server::supervise() {
  const bool reporting = config_.stats_interval.count() > 0;
  Clock::time_point last_time = Clock::now();
  std::uint64_t last_requests = 0;
  const auto report = [&](bool final) {
    const ServerStats now = stats();
    const Clock::time_point time = Clock::now();
    const double seconds = to_seconds(time - last_time);
    const std::uint64_t requests = now.replies.replies(), errors = now.replies.error_lines();
    const double rps = seconds > 0 ? static_cast<double>(requests - last_requests) / seconds : 0;
    spdlog::info(
        "stats{}: {} connection{} open, {} accepted, {} refused, {} request{} served ({:.0f} req/s), {} error{}",
        final ? " at shutdown" : "", now.open, plural_s(now.open), now.accepted, now.refused_total(), requests,
        plural_s(requests), rps, errors, plural_s(errors));
    last_time = time;
    last_requests = requests;
  };

  // Until stop() has posted, not merely begun: what it wrote before posting
  // is read below.
  if (!reporting) stop_posted_.acquire();
  while (reporting && !stop_posted_.try_acquire_for(config_.stats_interval)) report(false);
  std::unique_lock lock(mutex_, std::defer_lock);
  begin_stopping(lock);
  const auto wake_all = [this] {
    for (const Live& live : live_) wake(live.thread);
  };
  std::chrono::milliseconds pause = kWakeRepeatFirst;
  bool abandoned = false;
  wake_all();
  while (!all_closed()) {
    const Clock::time_point next = Clock::now() + pause;
    changed_.wait_until(lock, abandoned ? next : std::min(next, stop_deadline_), [this] { return all_closed(); });
    if (all_closed()) break;
    if (!abandoned && Clock::now() >= stop_deadline_) {
      abandoned = true;
      stop_.abandon();
      gate_.wake_all();  // requests waiting for a turn give up too
      if (loops_) loops_->abandon();
      for (const Live& live : live_) {
        try {  // a send in progress starts again under this timeout when the signal below interrupts it
          set_send_timeout(live.fd, kStopGrace);
        } catch (const std::system_error&) {
        }
      }
      const std::size_t open = live_.size() + (loops_ ? loops_->open() : 0);
      lock.unlock();
      spdlog::warn(
          "{} connection{} still open after {} ms: requests not answered yet are given up, and {} close{} "
          "within {} ms",
          open, plural_s(open), config_.shutdown_timeout.count(), open == 1 ? "it" : "they", open == 1 ? "s" : "",
          kStopGrace.count());
      lock.lock();
    }
    pause = abandoned ? kWakeRepeatAfterTimeout : std::min(pause * 2, kWakeRepeatMax);
    wake_all();
  }
  changed_.wait(lock, [this] { return finished_; });
  lock.unlock();
  if (reporting) report(true);
}

}  // namespace fib
