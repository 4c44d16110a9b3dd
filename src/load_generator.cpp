#include "fib_server/load_generator.h"

#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "fib_server/fib.h"
#include "fib_server/line_framer.h"
#include "fib_server/rate_schedule.h"
#include "fib_server/socket.h"

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
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double cpu_seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

struct CpuTimes {
  double user = 0, system = 0;
};

CpuTimes cpu_times(int who) {
  rusage usage{};
  getrusage(who, &usage);
  return {cpu_seconds(usage.ru_utime), cpu_seconds(usage.ru_stime)};
}

Clock::duration from_seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
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

  bool stopping() const { return stop.load(std::memory_order_relaxed); }

  const LoadConfig config;
  std::string requests;  // `pipeline` copies of "n\n": a batch is a prefix
  std::string expected;  // F(n) as the server should write it
  std::atomic<bool> stop{false};
  std::latch ready;      // counted down by each worker once connected
  std::latch go{1};      // opened by run() once every worker is ready
  Clock::time_point start, measure_start;  // written before `go` opens

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
      : shared_(shared), index_(index), fd_(std::move(fd)),
        due_(shared.config.pipeline), sent_(shared.config.pipeline) {
    const LoadConfig& c = shared.config;
    if (c.rate) stats_.uncorrected = std::make_unique<Histogram>();
    if (c.requests) quota_ = *c.requests / c.connections + (index < *c.requests % c.connections ? 1 : 0);
    if (fd_) configure_socket();
  }

  void start() { thread_ = std::thread([this] { body(); }); }
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
  std::uint64_t measured_in_flight() const { return count_measured_in_flight(); }
  std::uint64_t scheduled() const { return scheduled_; }
  std::uint64_t sent() const { return measured_sent_; }
  std::uint64_t sent_late() const { return sent_late_; }
  double thread_cpu_fraction() const { return thread_cpu_fraction_; }

 private:
  void body() {
    const bool connected = fd_ || connect();
    shared_.ready.count_down();
    shared_.go.wait();
    const Clock::time_point began = Clock::now();
    const CpuTimes cpu_before = cpu_times(RUSAGE_THREAD);
    if (!connected) {
      // Gave up connecting: this connection sends nothing.
    } else if (shared_.config.rate) {
      prctl(PR_SET_TIMERSLACK, 1UL);  // wake on time, not up to 50 us late
      open_loop();
    } else {
      closed_loop();
    }
    const CpuTimes cpu_after = cpu_times(RUSAGE_THREAD);
    const double wall = seconds(Clock::now() - began);
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

  // As many requests as the server will answer, `pipeline` in flight.
  void closed_loop() {
    for (;;) {
      if (shared_.stopping()) return;
      if (!fd_ && !connect()) return;
      const Clock::time_point now = Clock::now();
      std::uint64_t room = shared_.config.pipeline - in_flight_;
      if (quota_ && measured(now)) room = std::min(room, *quota_ - measured_sent_);
      if (room == 0 && in_flight_ == 0) return;  // quota reached and answered
      if (room > 0 && !send(room, now, now)) continue;
      receive();
    }
  }

  // Requests sent on the schedule whatever the answers do, so that the
  // latency of a stalled server is measured from when requests were due.
  void open_loop() {
    const LoadConfig& c = shared_.config;
    const RateSchedule schedule(shared_.start, *c.rate, c.connections, index_);
    std::uint64_t slots = 0;  // requests due so far that were sent
    Clock::time_point last_answer = shared_.start;
    for (;;) {
      if (shared_.stopping()) break;
      if (!fd_ && !connect()) break;
      Clock::time_point now = Clock::now();
      std::uint64_t count = schedule.sendable(now, slots, in_flight_, c.pipeline);
      if (quota_ && measured(schedule.due(slots))) count = std::min(count, *quota_ - measured_sent_);
      if (quota_done() && in_flight_ == 0) break;
      if (count > 0) {
        for (std::uint64_t i = 0; i < count; ++i) {
          const Clock::time_point due = schedule.due(slots + i);
          if (measured(due) && now - std::max(due, last_answer) > kLateSend) ++sent_late_;
        }
        const std::uint64_t first = slots;
        slots += count;
        if (!send_scheduled(schedule, first, count, now)) continue;
      }
      // Wait for an answer or for the next request to fall due.
      Clock::time_point wake = now + kStopCheckInterval;
      if (in_flight_ < c.pipeline && !quota_done()) wake = std::min(wake, schedule.due(slots));
      const auto wait = std::max(wake - now, Clock::duration::zero());
      const timespec ts{static_cast<time_t>(wait / 1s), static_cast<long>((wait % 1s) / 1ns)};
      pollfd p{fd_.get(), POLLIN, 0};
      const int ready = ::ppoll(&p, 1, &ts, nullptr);
      if (ready > 0) {
        if (receive()) last_answer = Clock::now();
      } else {
        check_timeout(Clock::now());
      }
    }
    // Requests due in the measured part before the run ended.
    const Clock::time_point end = Clock::now();
    for (std::uint64_t k = 0; schedule.due(k) < end; ++k) {
      if (measured(schedule.due(k))) ++scheduled_;
      if (quota_ && scheduled_ >= *quota_) break;
    }
  }

  bool send(std::uint64_t count, Clock::time_point due, Clock::time_point now) {
    for (std::uint64_t i = 0; i < count; ++i) push(due, now);
    return transmit(count);
  }

  bool send_scheduled(const RateSchedule& schedule, std::uint64_t first, std::uint64_t count,
                      Clock::time_point now) {
    for (std::uint64_t i = 0; i < count; ++i) push(schedule.due(first + i), now);
    return transmit(count);
  }

  void push(Clock::time_point due, Clock::time_point now) {
    const std::size_t slot = (head_ + in_flight_) % due_.size();
    due_[slot] = due;
    sent_[slot] = now;
    ++in_flight_;
    if (measured(due)) ++measured_sent_;
  }

  bool transmit(std::uint64_t count) {
    const std::size_t bytes = shared_.requests.size() / shared_.config.pipeline * count;
    if (send_all(fd_.get(), std::string_view(shared_.requests).substr(0, bytes))) return true;
    lose_connection(&ErrorCounts::reset_or_eof);
    return false;
  }

  // One receive, and every answer in it. False if the connection was lost.
  bool receive() {
    const std::ptrdiff_t received = receive_some(fd_.get(), framer_.free_space());
    const Clock::time_point now = Clock::now();
    if (received > 0) {
      framer_.commit(static_cast<std::size_t>(received));
      return take_answers(now);
    }
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return check_timeout(now);
    if (!shared_.stopping()) lose_connection(&ErrorCounts::reset_or_eof);
    return false;
  }

  bool take_answers(Clock::time_point now) {
    bool framing_lost = false;
    {
      std::lock_guard lock(mutex_);
      while (const auto line = framer_.next_line()) {
        if (in_flight_ == 0) {  // an answer nobody asked for
          ++stats_.errors.wrong_answer;
          continue;
        }
        const Clock::time_point due = due_[head_], sent = sent_[head_];
        head_ = (head_ + 1) % due_.size();
        --in_flight_;
        if (!measured(due)) continue;
        if (*line == shared_.expected) {
          ++stats_.requests;
          stats_.latency.record(to_ns(now - due));
          if (stats_.uncorrected) stats_.uncorrected->record(to_ns(now - sent));
        } else {
          ++stats_.errors.wrong_answer;
        }
      }
      if (framer_.line_too_long()) {
        ++stats_.errors.wrong_answer;
        framing_lost = true;
      }
    }
    if (framing_lost) lose_connection(&ErrorCounts::wrong_answer);
    return !framing_lost;
  }

  // False (and the connection dropped) if the oldest request is overdue.
  bool check_timeout(Clock::time_point now) {
    if (in_flight_ == 0 || now - sent_[head_] <= from_seconds(shared_.config.timeout_s)) return true;
    lose_connection(&ErrorCounts::timeout);
    return false;
  }

  std::uint64_t count_measured_in_flight() const {
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
      stats_.errors.*kind += count_measured_in_flight();
    }
    in_flight_ = 0;
    head_ = 0;
    framer_ = LineFramer{};
    fd_.reset();
  }

  // Connects, retrying for up to the request timeout. False if it gave up
  // or the run is stopping.
  bool connect() {
    const Clock::time_point first_try = Clock::now();
    for (;;) {
      if (shared_.stopping()) return false;
      try {
        fd_ = connect_tcp(shared_.config.target);
        configure_socket();
        return true;
      } catch (const std::exception&) {
        fd_.reset();
        std::lock_guard lock(mutex_);
        ++stats_.errors.connect;
      }
      if (Clock::now() - first_try > from_seconds(shared_.config.timeout_s)) return false;
      std::this_thread::sleep_for(kReconnectPause);
    }
  }

  void configure_socket() {
    set_no_delay(fd_.get());  // a refill of the pipeline must not wait for an ACK
    if (!shared_.config.rate) {
      // A blocked receive wakes this often to look at the stop flag and the timeout.
      set_receive_timeout(fd_.get(), std::min(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  from_seconds(shared_.config.timeout_s)),
                                              std::chrono::milliseconds(kStopCheckInterval)));
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
  std::uint64_t measured_sent_ = 0, sent_late_ = 0, scheduled_ = 0;
  double thread_cpu_fraction_ = 0;

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
    shared_->stop.store(true);
  }
  shared_->done.notify_all();
}

Summary LoadGenerator::run(const std::function<void(const IntervalReport&)>& on_interval) {
  Shared& s = *shared_;
  const LoadConfig& c = s.config;
  // Fail at once, with the reason, when the server cannot be reached at all.
  Fd first = connect_tcp(c.target);

  s.running = c.connections;
  for (unsigned i = 0; i < c.connections; ++i)
    s.workers.push_back(std::make_unique<Worker>(s, i, i == 0 ? std::move(first) : Fd()));
  for (auto& w : s.workers) w->start();
  s.ready.wait();
  s.start = Clock::now();
  s.measure_start = s.start + from_seconds(c.warmup_s);
  const CpuTimes cpu_before = cpu_times(RUSAGE_SELF);
  s.go.count_down();

  Worker::Stats total, interval;
  if (c.rate) {
    total.uncorrected = std::make_unique<Histogram>();
    interval.uncorrected = std::make_unique<Histogram>();
  }
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
      last_tick = tick;
      tick += 1s;
      lock.lock();
    }
  }
  const Clock::time_point end = Clock::now();
  s.stop.store(true);
  for (auto& w : s.workers) w->join();
  const CpuTimes cpu_after = cpu_times(RUSAGE_SELF);
  collect(total);

  Summary summary;
  summary.config = c;
  summary.seconds = std::max(0.0, seconds(end - s.measure_start));
  summary.requests = total.requests;
  summary.latency = total.latency;
  summary.uncorrected = std::move(total.uncorrected);
  summary.errors = total.errors;
  summary.cores = std::max(1u, std::thread::hardware_concurrency());
  summary.cpu_user_s = cpu_after.user - cpu_before.user;
  summary.cpu_system_s = cpu_after.system - cpu_before.system;
  bool first_worker = true;
  for (const auto& w : s.workers) {
    summary.in_flight += w->measured_in_flight();
    summary.scheduled += w->scheduled();
    summary.sent += w->sent();
    summary.sent_late += w->sent_late();
    summary.busiest_thread_cpu = std::max(summary.busiest_thread_cpu, w->thread_cpu_fraction());
    const double rps = summary.seconds > 0 ? static_cast<double>(w->collected_requests()) / summary.seconds : 0;
    summary.min_connection_rps = first_worker ? rps : std::min(summary.min_connection_rps, rps);
    summary.max_connection_rps = std::max(summary.max_connection_rps, rps);
    first_worker = false;
  }

  const double wall = seconds(end - s.start);
  const double machine = wall > 0 ? (summary.cpu_user_s + summary.cpu_system_s) / (wall * summary.cores) : 0;
  if (machine >= kBusyMachineFraction) {
    summary.warnings.push_back(fmt::format(
        "the client used {:.0f}% of all {} cores: it may be what limits this measurement", machine * 100,
        summary.cores));
  }
  if (summary.busiest_thread_cpu >= kBusyThreadFraction) {
    summary.warnings.push_back(fmt::format(
        "a client thread was on the CPU {:.0f}% of the run: the client may be what limits this measurement",
        summary.busiest_thread_cpu * 100));
  }
  if (c.rate && static_cast<double>(summary.sent) < kBehindScheduleFraction * static_cast<double>(summary.scheduled)) {
    summary.warnings.push_back(fmt::format(
        "fell behind the --rate schedule: sent {} of the {} requests due", summary.sent, summary.scheduled));
  }
  if (c.rate && static_cast<double>(summary.sent_late) > kLateSendFraction * static_cast<double>(summary.sent)) {
    summary.warnings.push_back(fmt::format(
        "{} requests went out more than 1 ms late with room in the pipeline: the client could not keep its "
        "schedule",
        summary.sent_late));
  }
  return summary;
}

}  // namespace fib
