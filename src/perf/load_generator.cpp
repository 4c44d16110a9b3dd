#include "fib/perf/load_generator.h"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <optional>
#include <thread>
#include <vector>

#include "client_connection.h"
#include "fib/net/socket.h"
#include "fib/perf/warnings.h"

namespace fib {

using namespace std::chrono_literals;

namespace {

// The CPUs this process may run on (affinity), not all the machine has.
unsigned usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// Starts every connection's thread; if threads run out, ends the ones
// started and throws.
void start_all(LoadGenerator& generator, LoadRun& run) {
  try {
    for (auto& connection : run.connections) connection->start();
  } catch (...) {
    generator.stop();
    for (auto& connection : run.connections)
      if (!connection->started()) run.ready.count_down();
    run.go.count_down();
    for (auto& connection : run.connections)
      if (connection->started()) connection->join();
    throw;
  }
}

// A stretch of the measured part in which a connection was not answered:
// `lost` if the server failed it, else it had simply finished its quota.
struct Stretch {
  Clock::time_point begin, end;
  bool lost = false;
};
using Stretches = std::vector<Stretch>;

// Where both (each in order, none overlapping) have a stretch: lost if
// either is.
Stretches intersect(const Stretches& a, const Stretches& b) {
  Stretches out;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const Clock::time_point begin = std::max(a[i].begin, b[j].begin), end = std::min(a[i].end, b[j].end);
    if (begin < end) out.push_back({begin, end, a[i].lost || b[j].lost});
    if (a[i].end < b[j].end) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

// A connection's stretches without a reply, within the measured part.
Stretches unanswered(const LoadRun& run, const ClientConnection& connection) {
  Stretches out;
  const auto add = [&](Clock::time_point begin, Clock::time_point end, bool lost) {
    begin = std::max(begin, run.measure_start);
    end = std::min(end, run.end);
    if (begin < end) out.push_back({begin, end, lost});
  };
  for (const ClientConnection::Silence& silence : connection.silences()) add(silence.begin, silence.end, true);
  const bool finished = connection.quota_finished();
  if (const auto since = connection.silent_since()) add(*since, finished ? connection.finished_at() : run.end, true);
  if (finished) add(connection.finished_at(), run.end, false);
  return out;
}

// When the server answered no connection, having failed at least one: the
// stretches every connection it ever answered spent unanswered. Connections
// it never answered (refused, or left waiting by a sequential server) say
// nothing about when it stopped.
Stretches outages(const LoadRun& run) {
  std::optional<Stretches> common;
  for (const auto& connection : run.connections) {
    if (!connection->replied()) continue;
    Stretches own = unanswered(run, *connection);
    common = common ? intersect(*common, own) : std::move(own);
  }
  Stretches out;
  if (!common) return out;
  for (const Stretch& stretch : *common) {
    if (!stretch.lost) continue;
    if (!out.empty() && out.back().end == stretch.begin) {
      out.back().end = stretch.end;
    } else {
      out.push_back(stretch);
    }
  }
  return out;
}

// How much of [begin, end) the outages cover.
Clock::duration overlap(const Stretches& outages, Clock::time_point begin, Clock::time_point end) {
  Clock::duration total{};
  for (const Stretch& outage : outages) {
    const Clock::time_point from = std::max(begin, outage.begin), to = std::min(end, outage.end);
    if (from < to) total += to - from;
  }
  return total;
}

// Totals of the connections, once they have all ended. Rates leave out the
// outages.
void add_connections(const LoadRun& run, Summary& summary) {
  const Stretches down = outages(run);
  for (const Stretch& outage : down) {
    summary.not_answering += outage.end - outage.begin;
    if (summary.outages.size() < Summary::kKeptOutages)
      summary.outages.push_back({outage.begin - run.measure_start, outage.end - outage.begin, outage.end == run.end});
  }
  summary.outage_count = down.size();
  bool first = true;
  for (const auto& connection : run.connections) {
    summary.in_flight += connection->in_flight();
    summary.unsent += connection->unsent();
    summary.gave_up += connection->gave_up() ? 1 : 0;
    summary.scheduled += connection->scheduled();
    summary.sent += connection->sent();
    summary.sent_late += connection->sent_late();
    summary.busiest_thread_cpu = std::max(summary.busiest_thread_cpu, connection->thread_cpu_fraction());
    // Each connection over its own measured time (under --requests some
    // finish early) that the server answered in.
    const Clock::time_point until = std::min(connection->finished_at(), run.end);
    const Clock::duration active = until - run.measure_start - overlap(down, run.measure_start, until);
    const double rps =
        active.count() > 0 ? static_cast<double>(connection->collected_requests()) / to_seconds(active) : 0;
    summary.min_connection_rps = first ? rps : std::min(summary.min_connection_rps, rps);
    summary.max_connection_rps = std::max(summary.max_connection_rps, rps);
    first = false;
  }
  // Starved: connections that asked and were left without an answer while
  // others had theirs.
  if (summary.requests > 0) {
    for (const auto& connection : run.connections) {
      if (connection->collected_requests() == 0 && connection->asked() && !connection->gave_up()) ++summary.starved;
    }
  }
}

// Until the run ends: once a second, what the connections recorded goes into
// `total`, and the second's numbers to `on_interval`.
void report_intervals(LoadRun& s, ClientConnection::Stats& total,
                      const std::function<void(const IntervalReport&)>& on_interval) {
  const LoadConfig& c = s.config;
  const Clock::time_point deadline = c.duration ? s.measure_start + *c.duration : Clock::time_point::max();
  Clock::time_point tick = s.measure_start + 1s, last_tick = s.measure_start;
  std::unique_lock lock(s.done_mutex);
  for (;;) {
    const auto finished = [&] { return s.running == 0 || s.stop.load(); };
    s.done.wait_until(lock, std::min(tick, deadline), finished);
    const Clock::time_point now = Clock::now();
    if (finished() || now >= deadline) return;
    if (now < tick) continue;
    lock.unlock();
    ClientConnection::Stats interval;
    if (c.rate) interval.uncorrected = std::make_unique<Histogram>();
    for (auto& connection : s.connections) connection->collect(interval);
    if (on_interval) {
      on_interval({now - s.measure_start, interval.requests, now - last_tick, interval.latency.percentile(50),
                   interval.latency.percentile(99), interval.errors.total()});
    }
    total.latency.merge(interval.latency);
    if (total.uncorrected) total.uncorrected->merge(*interval.uncorrected);
    total.requests += interval.requests;
    total.errors += interval.errors;
    for (const std::string& reply : interval.unexpected_replies) keep_unexpected_reply(total.unexpected_replies, reply);
    last_tick = now;
    // Late (the client was starved)? Next line a second from now, not a
    // burst of catch-up lines.
    tick = std::max(tick + 1s, now + 500ms);
    lock.lock();
  }
}

}  // namespace

ErrorCounts& ErrorCounts::operator+=(const ErrorCounts& other) {
  connect += other.connect;
  reset_or_eof += other.reset_or_eof;
  timeout += other.timeout;
  error_reply += other.error_reply;
  wrong_answer += other.wrong_answer;
  return *this;
}

LoadGenerator::LoadGenerator(LoadConfig config) : run_(std::make_unique<LoadRun>(std::move(config))) {}

LoadGenerator::~LoadGenerator() = default;

void LoadGenerator::stop() {
  {
    std::lock_guard lock(run_->done_mutex);
    if (!run_->stop.load()) run_->end = Clock::now();
    run_->stop.store(true, std::memory_order_release);
  }
  run_->done.notify_all();
}

Summary LoadGenerator::run(const std::function<void(const IntervalReport&)>& on_interval) {
  LoadRun& s = *run_;
  const LoadConfig& c = s.config;
  // Fail at once, with the reason, when the server cannot be reached at all.
  Fd first = connect_tcp(c.target, std::chrono::duration_cast<std::chrono::milliseconds>(c.timeout), &s.stop);

  s.running = c.connections;
  s.connections.push_back(std::make_unique<ClientConnection>(s, 0, std::move(first)));
  for (unsigned i = 1; i < c.connections; ++i) s.connections.push_back(std::make_unique<ClientConnection>(s, i, Fd()));
  start_all(*this, s);
  s.ready.wait();
  s.start = Clock::now();
  s.measure_start = s.start + c.warmup;
  const CpuTimes cpu_before = cpu_times(RUSAGE_SELF);
  s.go.count_down();

  ClientConnection::Stats total;
  if (c.rate) total.uncorrected = std::make_unique<Histogram>();
  report_intervals(s, total, on_interval);
  stop();  // sets s.end unless already stopped
  for (auto& connection : s.connections) connection->join();
  const CpuTimes cpu_after = cpu_times(RUSAGE_SELF);
  const Clock::time_point joined = Clock::now();
  for (auto& connection : s.connections) connection->collect(total);

  Summary summary;
  summary.config = c;
  summary.measured = std::max(Clock::duration::zero(), s.end - s.measure_start);
  summary.requests = total.requests;
  summary.latency = total.latency;
  summary.uncorrected = std::move(total.uncorrected);
  summary.errors = total.errors;
  summary.unexpected_replies = std::move(total.unexpected_replies);
  summary.cores = usable_cores();
  summary.cpu_user = cpu_after.user - cpu_before.user;
  summary.cpu_system = cpu_after.system - cpu_before.system;
  add_connections(s, summary);
  summary.warnings = client_warnings(summary, joined - s.start);
  return summary;
}

}  // namespace fib
