#include "client_connection.h"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "fib/core/fib.h"
#include "fib/core/request_handler.h"

namespace fib {

using namespace std::chrono_literals;

namespace {

// How often a thread waiting for an answer looks at the stop flag.
constexpr auto kStopCheckInterval = 100ms;
// Pause between failed connection attempts.
constexpr auto kReconnectPause = 100ms;
// A request sent this long after it was due, with room in the pipeline, was
// held up by the client itself.
constexpr auto kLateSend = 1ms;
}  // namespace

CpuTimes cpu_times(int who) {
  rusage usage{};
  getrusage(who, &usage);
  const auto to_duration = [](const timeval& tv) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(tv.tv_sec) +
                                                       std::chrono::microseconds(tv.tv_usec));
  };
  return {to_duration(usage.ru_utime), to_duration(usage.ru_stime)};
}

LoadRun::LoadRun(LoadConfig c) : config(std::move(c)), ready(config.connections) {
  for (unsigned i = 0; i < config.pipeline; ++i) requests += fmt::format("{}\n", config.n);
  expected = fmt::format("{}", fib_iterative(config.n));
}

ClientConnection::ClientConnection(LoadRun& run, unsigned index, Fd fd)
    : run_(run), index_(index), fd_(std::move(fd)), in_flight_(run.config.pipeline) {
  const LoadConfig& c = run.config;
  if (c.rate) stats_.uncorrected = std::make_unique<Histogram>();
  if (c.requests) quota_ = *c.requests / c.connections + (index < *c.requests % c.connections ? 1 : 0);
  if (fd_) configure_socket();
}

void ClientConnection::collect(Stats& into) {
  std::lock_guard lock(mutex_);
  into.latency.merge(stats_.latency);
  stats_.latency.clear();
  if (into.uncorrected && stats_.uncorrected) {
    into.uncorrected->merge(*stats_.uncorrected);
    stats_.uncorrected->clear();
  }
  into.requests += stats_.requests;
  collected_requests_ += stats_.requests;
  stats_.requests = 0;
  into.errors += stats_.errors;
  stats_.errors = {};
  for (const std::string& reply : stats_.unexpected_replies) keep_unexpected_reply(into.unexpected_replies, reply);
  stats_.unexpected_replies.clear();
}

void keep_unexpected_reply(std::vector<std::string>& replies, std::string_view reply) {
  constexpr std::size_t kKept = 3, kShownBytes = 200;
  const std::string_view shown = reply.substr(0, kShownBytes);
  if (replies.size() < kKept && std::find(replies.begin(), replies.end(), shown) == replies.end())
    replies.emplace_back(shown);
}

// Counts a reply that is not F(n) by its kind, and keeps it to show if it
// is one of the first few. Called with mutex_ held.
void ClientConnection::unexpected(std::string_view reply) {
  ++(reply.starts_with(kErrorPrefix) ? stats_.errors.error_reply : stats_.errors.wrong_answer);
  keep_unexpected_reply(stats_.unexpected_replies, reply);
}

void ClientConnection::body() {
  const bool connected = fd_ || connect();
  run_.ready.count_down();
  run_.go.wait();
  const Clock::time_point began = Clock::now();
  last_reply_ = run_.start;
  const CpuTimes cpu_before = cpu_times(RUSAGE_THREAD);
  if (!connected) {
    gave_up_ = true;
  } else if (run_.config.rate) {
    prctl(PR_SET_TIMERSLACK, 1UL);  // wake on time, not up to 50 us late
    open_loop();
  } else {
    closed_loop();
  }
  finished_at_ = Clock::now();
  // A connection that gave up leaves the rest of its quota unsent (which
  // includes any requests already counted as due but unsent).
  if (gave_up_ && quota_ && measured_sent_ < *quota_) unsent_ = std::max(unsent_, *quota_ - measured_sent_);
  const CpuTimes cpu_after = cpu_times(RUSAGE_THREAD);
  const Clock::duration wall = finished_at_ - began;
  if (wall.count() > 0) {
    thread_cpu_fraction_ =
        to_seconds(cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / to_seconds(wall);
  }
  {
    std::lock_guard lock(run_.done_mutex);
    --run_.running;
  }
  run_.done.notify_all();
}

// As many requests as the server will answer, `pipeline` in flight.
void ClientConnection::closed_loop() {
  for (;;) {
    if (run_.stopping() || finished() || gave_up_) return;
    if (!fd_ && !connect()) return;
    const Clock::time_point now = Clock::now();
    const std::uint64_t room = affordable(in_flight_.room(), [&](std::uint64_t) { return now; });
    if (room > 0 && !send(
                        room, [&](std::uint64_t) { return now; }, now))
      continue;
    receive();
  }
}

// Requests sent on the schedule whatever the answers do, so that the
// latency of a stalled server is measured from when requests were due.
void ClientConnection::open_loop() {
  const LoadConfig& c = run_.config;
  const RateSchedule schedule(run_.start, *c.rate, c.connections, index_);
  const auto due = [&](std::uint64_t slot) { return schedule.due(slot); };
  std::uint64_t slots = 0;  // requests due so far that were sent
  Clock::time_point last_answer = run_.start;
  for (;;) {
    if (run_.stopping() || finished() || gave_up_) break;
    if (!fd_ && !connect()) break;
    const Clock::time_point now = Clock::now();
    const std::uint64_t count = affordable(schedule.sendable(now, slots, in_flight_.size(), c.pipeline),
                                           [&](std::uint64_t i) { return due(slots + i); });
    if (count > 0) {
      for (std::uint64_t i = 0; i < count; ++i) {
        if (measured(due(slots + i)) && now - std::max(due(slots + i), last_answer) > kLateSend) ++sent_late_;
      }
      const std::uint64_t first = slots;
      slots += count;
      if (!send(
              count, [&](std::uint64_t i) { return due(first + i); }, now))
        continue;
    }
    // Wait for an answer or for the next request to fall due.
    Clock::time_point wake = now + kStopCheckInterval;
    if (in_flight_.room() > 0 && !quota_done()) wake = std::min(wake, due(slots));
    const auto wait = std::max(wake - now, Clock::duration::zero());
    const timespec ts{static_cast<time_t>(wait / 1s), static_cast<long>((wait % 1s) / 1ns)};
    pollfd p{fd_.get(), POLLIN, 0};
    if (::ppoll(&p, 1, &ts, nullptr) > 0) {
      if (receive()) last_answer = Clock::now();
    } else {
      check_timeout(Clock::now());
    }
  }
  account_for_the_end(schedule, slots);
}

// Under --rate, at the end: how many measured requests fell due before the
// run ended, and, as lower bounds on their latency, how long those still
// unanswered (sent or not) have waited, so that a stall at the end of a run
// still shows in the percentiles.
void ClientConnection::account_for_the_end(const RateSchedule& schedule, std::uint64_t slots) {
  const Clock::time_point end = run_.stopping() ? run_.end : Clock::now();
  const auto slots_due_before = [&](Clock::time_point t) -> std::uint64_t {
    if (t <= schedule.due(0)) return 0;
    return static_cast<std::uint64_t>((t - schedule.due(0) - Clock::duration(1)) / schedule.interval()) + 1;
  };
  const std::uint64_t first_measured = slots_due_before(run_.measure_start);
  std::uint64_t due_by_end = std::max(slots_due_before(end), first_measured);
  if (quota_) due_by_end = std::min(due_by_end, first_measured + *quota_);
  scheduled_ = due_by_end - first_measured;
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < in_flight_.size(); ++i) {
    if (measured(in_flight_[i].due)) stats_.latency.record(to_ns(end - in_flight_[i].due));
  }
  for (std::uint64_t k = std::max(slots, first_measured); k < due_by_end; ++k) {
    stats_.latency.record(to_ns(end - schedule.due(k)));
    ++unsent_;
  }
}

// How many of the next `count` requests the quota allows; requests due in
// the warm-up do not count against it. `due_of(i)` is the due time of the
// i-th of them.
template <typename DueOf>
std::uint64_t ClientConnection::affordable(std::uint64_t count, DueOf due_of) const {
  if (!quota_) return count;
  std::uint64_t measured_in_batch = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (measured(due_of(i)) && measured_sent_ + ++measured_in_batch > *quota_) return i;
  }
  return count;
}

template <typename DueOf>
bool ClientConnection::send(std::uint64_t count, DueOf due_of, Clock::time_point now) {
  for (std::uint64_t i = 0; i < count; ++i) {
    in_flight_.push({due_of(i), now});
    if (measured(due_of(i))) ++measured_sent_;
  }
  const std::size_t bytes = run_.requests.size() / run_.config.pipeline * count;
  if (send_all(fd_.get(), std::string_view(run_.requests).substr(0, bytes))) return true;
  lose_connection(&ErrorCounts::reset_or_eof);
  return false;
}

// One receive, and every answer in it. False if the connection was lost or
// the run is over.
bool ClientConnection::receive() {
  const std::ptrdiff_t received = receive_some(fd_.get(), framer_.free_space());
  const Clock::time_point now = Clock::now();
  if (run_.stopping()) return false;  // the run is over: answers now are not counted
  if (received > 0) {
    framer_.commit(static_cast<std::size_t>(received));
    return take_answers(now);
  }
  if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return check_timeout(now);
  lose_connection(&ErrorCounts::reset_or_eof);
  return false;
}

// Connects, retrying for up to the request timeout; one connect error
// however many attempts that takes. False if it gave up or the run is
// stopping.
bool ClientConnection::connect() {
  const Clock::time_point first_try = Clock::now();
  bool counted = false;
  for (;;) {
    if (run_.stopping()) return false;
    try {
      fd_ = connect_tcp(run_.config.target, std::chrono::duration_cast<std::chrono::milliseconds>(run_.config.timeout),
                        &run_.stop);
      configure_socket();
      return true;
    } catch (const std::exception&) {
      fd_.reset();
      if (!run_.stopping()) lost_since_reply_ = true;
      if (!counted && !run_.stopping()) {
        std::lock_guard lock(mutex_);
        ++stats_.errors.connect;
        counted = true;
      }
    }
    if (Clock::now() - first_try > run_.config.timeout) {
      gave_up_ = true;
      return false;
    }
    std::this_thread::sleep_for(kReconnectPause);
  }
}

void ClientConnection::configure_socket() {
  set_no_delay(fd_.get());  // a refill of the pipeline must not wait for an ACK
  if (!run_.config.rate) {
    // A blocked receive wakes this often to look at the stop flag and the
    // timeout (never 0, which would mean never).
    const auto slice = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(run_.config.timeout),
                                  std::chrono::milliseconds(1), std::chrono::milliseconds(kStopCheckInterval));
    set_receive_timeout(fd_.get(), slice);
  }
}

}  // namespace fib
