#include "fib/perf/load_generator.h"

#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "fib/core/fib.h"
#include "fib/core/line_framer.h"
#include "fib/core/rate_schedule.h"
#include "fib/core/request_handler.h"
#include "fib/net/socket.h"

namespace fib {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// How often a thread waiting for an answer looks at the stop flag.
constexpr auto kStopCheckInterval = 100ms;
// Pause between failed connection attempts.
constexpr auto kReconnectPause = 100ms;
// A request sent this long after it was due, with room in the pipeline, was
// held up by the client itself.
constexpr auto kLateSend = 1ms;
// Above these the client probably measured itself.
constexpr double kBusyMachineFraction = 0.9;
constexpr double kBusyThreadFraction = 0.9;
constexpr double kBehindScheduleFraction = 0.99;
constexpr double kLateSendFraction = 0.01;

std::uint64_t to_ns(Clock::duration d) {
  return static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

struct CpuTimes {
  double user = 0, system = 0;
};

CpuTimes cpu_times(int who) {
  rusage usage{};
  getrusage(who, &usage);
  const auto to_s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return {to_s(usage.ru_utime), to_s(usage.ru_stime)};
}

// The CPUs this process may run on (affinity), not all the machine has.
unsigned usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

ErrorCounts& ErrorCounts::operator+=(const ErrorCounts& other) {
  connect += other.connect;
  reset_or_eof += other.reset_or_eof;
  timeout += other.timeout;
  wrong_answer += other.wrong_answer;
  return *this;
}

struct LoadGenerator::Shared {
  explicit Shared(LoadConfig c) : config(std::move(c)), ready(config.connections) {
    for (unsigned i = 0; i < config.pipeline; ++i) requests += fmt::format("{}\n", config.n);
    expected = fmt::format("{}", fib_iterative(config.n));
  }

  bool stopping() const { return stop.load(std::memory_order_acquire); }

  const LoadConfig config;
  std::string requests;  // `pipeline` copies of "n\n": a batch is a prefix
  std::string expected;  // F(n) as the server should write it
  std::atomic<bool> stop{false};
  std::latch ready;      // counted down by each worker once connected
  std::latch go{1};      // opened by run() once every worker is ready
  Clock::time_point start, measure_start;  // written before `go` opens
  Clock::time_point end;                   // written before `stop` is set

  std::mutex done_mutex;  // guards `running`; wakes run() early
  std::condition_variable done;
  unsigned running = 0;

  std::vector<std::unique_ptr<Worker>> workers;
};

// One connection and the thread that drives it.
class LoadGenerator::Worker {
 public:
  // What the collector takes once a second; guarded by mutex_.
  struct Stats {
    Histogram latency;
    std::unique_ptr<Histogram> uncorrected;
    std::uint64_t requests = 0;
    ErrorCounts errors;
  };

  Worker(Shared& shared, unsigned index, Fd fd)
      : shared_(shared), index_(index), fd_(std::move(fd)), due_(shared.config.pipeline),
        sent_(shared.config.pipeline) {
    const LoadConfig& c = shared.config;
    if (c.rate) stats_.uncorrected = std::make_unique<Histogram>();
    if (c.requests) quota_ = *c.requests / c.connections + (index < *c.requests % c.connections ? 1 : 0);
    if (fd_) configure_socket();
  }

  void start() { thread_ = std::thread([this] { body(); }); }
  bool started() const { return thread_.joinable(); }
  void join() { thread_.join(); }

  // Moves what was recorded since the last call into `into`.
  void collect(Stats& into) {
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
  }

  // After join().
  std::uint64_t collected_requests() const { return collected_requests_; }
  std::uint64_t in_flight() const { return measured_in_flight(); }
  std::uint64_t unsent() const { return unsent_; }
  bool gave_up() const { return gave_up_; }
  std::uint64_t scheduled() const { return scheduled_; }
  std::uint64_t sent() const { return measured_sent_; }
  std::uint64_t sent_late() const { return sent_late_; }
  double thread_cpu_fraction() const { return thread_cpu_fraction_; }
  Clock::time_point finished_at() const { return finished_at_; }

 private:
  void body() {
    const bool connected = fd_ || connect();
    shared_.ready.count_down();
    shared_.go.wait();
    const Clock::time_point began = Clock::now();
    const CpuTimes cpu_before = cpu_times(RUSAGE_THREAD);
    if (!connected) {
      gave_up_ = true;
    } else if (shared_.config.rate) {
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
    const double wall = seconds(finished_at_ - began);
    if (wall > 0)
      thread_cpu_fraction_ = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall;
    {
      std::lock_guard lock(shared_.done_mutex);
      --shared_.running;
    }
    shared_.done.notify_all();
  }

  bool quota_done() const { return quota_ && measured_sent_ >= *quota_; }
  bool measured(Clock::time_point due) const { return due >= shared_.measure_start; }
  bool finished() const { return quota_done() && in_flight_ == 0; }

  // As many requests as the server will answer, `pipeline` in flight.
  void closed_loop() {
    for (;;) {
      if (shared_.stopping() || finished() || gave_up_) return;
      if (!fd_ && !connect()) return;
      const Clock::time_point now = Clock::now();
      const std::uint64_t room = affordable(shared_.config.pipeline - in_flight_, [&](std::uint64_t) { return now; });
      if (room > 0 && !send(room, [&](std::uint64_t) { return now; }, now)) continue;
      receive();
    }
  }

  // Requests sent on the schedule whatever the answers do, so that the
  // latency of a stalled server is measured from when requests were due.
  void open_loop() {
    const LoadConfig& c = shared_.config;
    const RateSchedule schedule(shared_.start, *c.rate, c.connections, index_);
    const auto due = [&](std::uint64_t slot) { return schedule.due(slot); };
    std::uint64_t slots = 0;  // requests due so far that were sent
    Clock::time_point last_answer = shared_.start;
    for (;;) {
      if (shared_.stopping() || finished() || gave_up_) break;
      if (!fd_ && !connect()) break;
      const Clock::time_point now = Clock::now();
      const std::uint64_t count = affordable(schedule.sendable(now, slots, in_flight_, c.pipeline),
                                             [&](std::uint64_t i) { return due(slots + i); });
      if (count > 0) {
        for (std::uint64_t i = 0; i < count; ++i) {
          if (measured(due(slots + i)) && now - std::max(due(slots + i), last_answer) > kLateSend) ++sent_late_;
        }
        const std::uint64_t first = slots;
        slots += count;
        if (!send(count, [&](std::uint64_t i) { return due(first + i); }, now)) continue;
      }
      // Wait for an answer or for the next request to fall due.
      Clock::time_point wake = now + kStopCheckInterval;
      if (in_flight_ < c.pipeline && !quota_done()) wake = std::min(wake, due(slots));
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
  // unanswered (sent or not) have waited, so that a stall at the end of a
  // run still shows in the percentiles.
  void account_for_the_end(const RateSchedule& schedule, std::uint64_t slots) {
    const Clock::time_point end = shared_.stopping() ? shared_.end : Clock::now();
    const auto slots_due_before = [&](Clock::time_point t) -> std::uint64_t {
      if (t <= schedule.due(0)) return 0;
      return static_cast<std::uint64_t>((t - schedule.due(0) - Clock::duration(1)) / schedule.interval()) + 1;
    };
    const std::uint64_t first_measured = slots_due_before(shared_.measure_start);
    std::uint64_t due_by_end = std::max(slots_due_before(end), first_measured);
    if (quota_) due_by_end = std::min(due_by_end, first_measured + *quota_);
    scheduled_ = due_by_end - first_measured;
    std::lock_guard lock(mutex_);
    for (std::uint64_t i = 0; i < in_flight_; ++i) {
      const Clock::time_point d = due_[(head_ + i) % due_.size()];
      if (measured(d)) stats_.latency.record(to_ns(end - d));
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
  std::uint64_t affordable(std::uint64_t count, DueOf due_of) const {
    if (!quota_) return count;
    std::uint64_t measured_in_batch = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (measured(due_of(i)) && measured_sent_ + ++measured_in_batch > *quota_) return i;
    }
    return count;
  }

  template <typename DueOf>
  bool send(std::uint64_t count, DueOf due_of, Clock::time_point now) {
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::size_t slot = (head_ + in_flight_) % due_.size();
      due_[slot] = due_of(i);
      sent_[slot] = now;
      ++in_flight_;
      if (measured(due_[slot])) ++measured_sent_;
    }
    const std::size_t bytes = shared_.requests.size() / shared_.config.pipeline * count;
    if (send_all(fd_.get(), std::string_view(shared_.requests).substr(0, bytes))) return true;
    lose_connection(&ErrorCounts::reset_or_eof);
    return false;
  }

  // One receive, and every answer in it. False if the connection was lost
  // or the run is over.
  bool receive() {
    const std::ptrdiff_t received = receive_some(fd_.get(), framer_.free_space());
    const Clock::time_point now = Clock::now();
    if (shared_.stopping()) return false;  // the run is over: answers now are not counted
    if (received > 0) {
      framer_.commit(static_cast<std::size_t>(received));
      return take_answers(now);
    }
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return check_timeout(now);
    lose_connection(&ErrorCounts::reset_or_eof);
    return false;
  }

  bool take_answers(Clock::time_point now) {
    const Clock::duration timeout = from_seconds(shared_.config.timeout_s);
    bool framing_lost = false, server_stopping = false;
    {
      std::lock_guard lock(mutex_);
      while (const auto line = framer_.next_line()) {
        if (*line == kStoppingLine) {  // the server's last line: what is in flight is not answered
          server_stopping = true;
          break;
        }
        if (in_flight_ == 0) {  // an answer nobody asked for
          ++stats_.errors.wrong_answer;
          continue;
        }
        const Clock::time_point due = due_[head_], sent = sent_[head_];
        head_ = (head_ + 1) % due_.size();
        --in_flight_;
        // Every answer is checked, warm-up included; only measured ones are timed.
        if (*line != shared_.expected) {
          ++stats_.errors.wrong_answer;
        } else if (now - sent > timeout) {
          if (measured(due)) ++stats_.errors.timeout;  // right, but too late
        } else if (measured(due)) {
          ++stats_.requests;
          stats_.latency.record(to_ns(now - due));
          if (stats_.uncorrected) stats_.uncorrected->record(to_ns(now - sent));
        }
      }
      if (framer_.line_too_long()) {
        ++stats_.errors.wrong_answer;
        framing_lost = true;
      }
    }
    if (framing_lost) lose_connection(&ErrorCounts::wrong_answer);
    if (server_stopping) lose_connection(&ErrorCounts::reset_or_eof);
    return !framing_lost && !server_stopping;
  }

  // False (and the connection dropped) if the oldest request is overdue.
  // Under --requests, a connection that timed out gives up the rest of its
  // quota, so a stalled server costs one timeout, not one per request.
  bool check_timeout(Clock::time_point now) {
    if (in_flight_ == 0 || now - sent_[head_] <= from_seconds(shared_.config.timeout_s)) return true;
    lose_connection(&ErrorCounts::timeout);
    if (quota_) gave_up_ = true;
    return false;
  }

  std::uint64_t measured_in_flight() const {
    std::uint64_t count = 0;
    for (std::uint64_t i = 0; i < in_flight_; ++i)
      if (measured(due_[(head_ + i) % due_.size()])) ++count;
    return count;
  }

  // Every request in flight is lost (counted as `kind`); the next loop
  // reconnects. Answers to them could no longer be matched to requests.
  void lose_connection(std::uint64_t ErrorCounts::*kind) {
    {
      std::lock_guard lock(mutex_);
      stats_.errors.*kind += measured_in_flight();
    }
    in_flight_ = 0;
    head_ = 0;
    framer_ = LineFramer{};
    fd_.reset();
  }

  // Connects, retrying for up to the request timeout; one connect error
  // however many attempts that takes. False if it gave up or the run is
  // stopping.
  bool connect() {
    const Clock::duration timeout = from_seconds(shared_.config.timeout_s);
    const Clock::time_point first_try = Clock::now();
    bool counted = false;
    for (;;) {
      if (shared_.stopping()) return false;
      try {
        fd_ = connect_tcp(shared_.config.target, std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
                          &shared_.stop);
        configure_socket();
        return true;
      } catch (const std::exception&) {
        fd_.reset();
        if (!counted && !shared_.stopping()) {
          std::lock_guard lock(mutex_);
          ++stats_.errors.connect;
          counted = true;
        }
      }
      if (Clock::now() - first_try > timeout) {
        gave_up_ = true;
        return false;
      }
      std::this_thread::sleep_for(kReconnectPause);
    }
  }

  void configure_socket() {
    set_no_delay(fd_.get());  // a refill of the pipeline must not wait for an ACK
    if (!shared_.config.rate) {
      // A blocked receive wakes this often to look at the stop flag and the
      // timeout (never 0, which would mean never).
      const auto slice = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        from_seconds(shared_.config.timeout_s)),
                                    std::chrono::milliseconds(1), std::chrono::milliseconds(kStopCheckInterval));
      set_receive_timeout(fd_.get(), slice);
    }
  }

  Shared& shared_;
  const unsigned index_;
  Fd fd_;
  LineFramer framer_;
  // Requests in flight, oldest at head_: when each was due and when sent.
  std::vector<Clock::time_point> due_, sent_;
  std::size_t head_ = 0;
  std::uint64_t in_flight_ = 0;
  std::optional<std::uint64_t> quota_;  // measured requests this connection sends
  std::uint64_t measured_sent_ = 0, sent_late_ = 0, scheduled_ = 0, unsent_ = 0;
  bool gave_up_ = false;
  double thread_cpu_fraction_ = 0;
  Clock::time_point finished_at_;

  std::mutex mutex_;  // this connection's own: the worker and the collector
  Stats stats_;
  std::uint64_t collected_requests_ = 0;  // the collector's running total

  std::thread thread_;
};

LoadGenerator::LoadGenerator(LoadConfig config) : shared_(std::make_unique<Shared>(std::move(config))) {}

LoadGenerator::~LoadGenerator() = default;

void LoadGenerator::stop() {
  {
    std::lock_guard lock(shared_->done_mutex);
    if (!shared_->stop.load()) shared_->end = Clock::now();
    shared_->stop.store(true, std::memory_order_release);
  }
  shared_->done.notify_all();
}

Summary LoadGenerator::run(const std::function<void(const IntervalReport&)>& on_interval) {
  Shared& s = *shared_;
  const LoadConfig& c = s.config;
  // Fail at once, with the reason, when the server cannot be reached at all.
  Fd first = connect_tcp(c.target, std::chrono::duration_cast<std::chrono::milliseconds>(from_seconds(c.timeout_s)),
                         &s.stop);

  s.running = c.connections;
  for (unsigned i = 0; i < c.connections; ++i)
    s.workers.push_back(std::make_unique<Worker>(s, i, i == 0 ? std::move(first) : Fd()));
  try {
    for (auto& w : s.workers) w->start();
  } catch (...) {
    // Out of threads: end the ones started, then report.
    stop();
    for (auto& w : s.workers)
      if (!w->started()) s.ready.count_down();
    s.go.count_down();
    for (auto& w : s.workers)
      if (w->started()) w->join();
    throw;
  }
  s.ready.wait();
  s.start = Clock::now();
  s.measure_start = s.start + from_seconds(c.warmup_s);
  const CpuTimes cpu_before = cpu_times(RUSAGE_SELF);
  s.go.count_down();

  Worker::Stats total, interval;
  if (c.rate) total.uncorrected = std::make_unique<Histogram>();
  const auto collect = [&](Worker::Stats& into) {
    for (auto& w : s.workers) w->collect(into);
  };

  const Clock::time_point deadline =
      c.duration_s ? s.measure_start + from_seconds(*c.duration_s) : Clock::time_point::max();
  Clock::time_point tick = s.measure_start + 1s, last_tick = s.measure_start;
  {
    std::unique_lock lock(s.done_mutex);
    for (;;) {
      const auto finished = [&] { return s.running == 0 || s.stop.load(); };
      s.done.wait_until(lock, std::min(tick, deadline), finished);
      const Clock::time_point now = Clock::now();
      if (finished() || now >= deadline) break;
      if (now < tick) continue;
      lock.unlock();
      interval = Worker::Stats{};
      if (c.rate) interval.uncorrected = std::make_unique<Histogram>();
      collect(interval);
      if (on_interval) {
        on_interval({seconds(now - s.measure_start), interval.requests, seconds(now - last_tick),
                     interval.latency.percentile(50), interval.latency.percentile(99), interval.errors.total()});
      }
      total.latency.merge(interval.latency);
      if (total.uncorrected) total.uncorrected->merge(*interval.uncorrected);
      total.requests += interval.requests;
      total.errors += interval.errors;
      last_tick = now;
      // Late (the client was starved)? Next line a second from now, not a
      // burst of catch-up lines.
      tick = std::max(tick + 1s, now + 500ms);
      lock.lock();
    }
  }
  stop();  // sets s.end unless already stopped
  for (auto& w : s.workers) w->join();
  const CpuTimes cpu_after = cpu_times(RUSAGE_SELF);
  const Clock::time_point joined = Clock::now();
  collect(total);

  Summary summary;
  summary.config = c;
  summary.seconds = std::max(0.0, seconds(s.end - s.measure_start));
  summary.requests = total.requests;
  summary.latency = total.latency;
  summary.uncorrected = std::move(total.uncorrected);
  summary.errors = total.errors;
  summary.cores = usable_cores();
  summary.cpu_user_s = cpu_after.user - cpu_before.user;
  summary.cpu_system_s = cpu_after.system - cpu_before.system;
  bool first_worker = true;
  for (const auto& w : s.workers) {
    summary.in_flight += w->in_flight();
    summary.unsent += w->unsent();
    summary.gave_up += w->gave_up() ? 1 : 0;
    summary.scheduled += w->scheduled();
    summary.sent += w->sent();
    summary.sent_late += w->sent_late();
    summary.busiest_thread_cpu = std::max(summary.busiest_thread_cpu, w->thread_cpu_fraction());
    // Each connection over its own measured time: under --requests some finish early.
    const double active = seconds(std::min(w->finished_at(), s.end) - s.measure_start);
    const double rps = active > 0 ? static_cast<double>(w->collected_requests()) / active : 0;
    summary.min_connection_rps = first_worker ? rps : std::min(summary.min_connection_rps, rps);
    summary.max_connection_rps = std::max(summary.max_connection_rps, rps);
    first_worker = false;
  }

  const double wall = seconds(joined - s.start);
  const double machine = wall > 0 ? (summary.cpu_user_s + summary.cpu_system_s) / (wall * summary.cores) : 0;
  if (machine >= kBusyMachineFraction) {
    summary.warnings.push_back(fmt::format(
        "the client used {:.0f}% of the {} cores it may run on: it may be what limits this measurement",
        machine * 100, summary.cores));
  }
  if (summary.busiest_thread_cpu >= kBusyThreadFraction) {
    summary.warnings.push_back(fmt::format(
        "a client thread was on the CPU {:.0f}% of the run: the client may be what limits this measurement",
        summary.busiest_thread_cpu * 100));
  }
  const bool late = static_cast<double>(summary.sent_late) > kLateSendFraction * static_cast<double>(summary.sent);
  if (c.rate && late) {
    summary.warnings.push_back(fmt::format(
        "{} requests went out more than 1 ms late with room in the pipeline: the client could not keep its "
        "schedule, and is what limits this measurement",
        summary.sent_late));
  } else if (c.rate && static_cast<double>(summary.sent) < kBehindScheduleFraction * static_cast<double>(summary.scheduled)) {
    summary.warnings.push_back(fmt::format(
        "fell behind the --rate schedule: sent {} of the {} requests due, with the pipeline full: the server did "
        "not answer fast enough",
        summary.sent, summary.scheduled));
  }
  if (summary.gave_up > 0) {
    summary.warnings.push_back(fmt::format("{} connection{} gave up (server unreachable, or a timeout under "
                                           "--requests)",
                                           summary.gave_up, summary.gave_up == 1 ? "" : "s"));
  }
  return summary;
}

}  // namespace fib
