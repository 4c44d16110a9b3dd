// fib_perf's engine: drives a fib_server with N connections, closed-loop (as
// fast as answers come back) or open-loop at a fixed rate, checks every
// answer, and gathers latency and error statistics.
//
// Each connection has a thread of its own and its own statistics, guarded by
// a mutex of its own that only the collector also takes (once a second and at
// the end): the request path shares no lock, allocates nothing and prints
// nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fib/core/address.h"
#include "fib/core/histogram.h"

namespace fib {

struct LoadConfig {
  HostPort target{"127.0.0.1", 25000};
  unsigned connections = 1;
  unsigned n = 1;                          // the Fibonacci index sent
  std::optional<double> duration_s;        // measured time, after the warm-up
  std::optional<std::uint64_t> requests;   // stop after this many measured answers
  std::optional<double> rate;              // total requests per second: open loop
  unsigned pipeline = 1;                   // requests in flight per connection
  double warmup_s = 0;                     // load applied but not counted
  double timeout_s = 10;                   // a request unanswered this long is an error
};

struct ErrorCounts {
  std::uint64_t connect = 0;       // connection attempts that failed
  std::uint64_t reset_or_eof = 0;  // requests lost when the server reset or closed (or said it is stopping)
  std::uint64_t timeout = 0;       // requests unanswered within the timeout
  std::uint64_t wrong_answer = 0;  // an error line or a wrong number

  std::uint64_t total() const { return connect + reset_or_eof + timeout + wrong_answer; }
  ErrorCounts& operator+=(const ErrorCounts& other);
};

// One second of a run, for the live line.
struct IntervalReport {
  double seconds = 0;          // since the measured part began
  std::uint64_t requests = 0;  // correct answers in this interval
  double interval_s = 0;
  std::uint64_t p50_ns = 0, p99_ns = 0;
  std::uint64_t errors = 0;
};

struct Summary {
  LoadConfig config;
  double seconds = 0;          // length of the measured part
  std::uint64_t requests = 0;  // correct answers to requests sent in the measured part
  // From the due time under --rate, from the send otherwise. Under --rate it
  // also holds, as lower bounds, the time waited so far by requests due but
  // unanswered when the run stopped, so a stall at the end still shows.
  Histogram latency;
  std::unique_ptr<Histogram> uncorrected;  // from the actual send, under --rate only
  ErrorCounts errors;
  std::uint64_t in_flight = 0;  // measured requests sent and unanswered when the run stopped
  // Measured requests never sent: due under --rate when the run stopped, or
  // left of a --requests quota by a connection that gave up.
  std::uint64_t unsent = 0;
  unsigned gave_up = 0;  // connections that stopped: unreachable server, or a timeout under --requests
  double min_connection_rps = 0, max_connection_rps = 0;
  // Under --rate: requests due in the measured part, and how many were sent.
  std::uint64_t scheduled = 0, sent = 0, sent_late = 0;
  double cpu_user_s = 0, cpu_system_s = 0, busiest_thread_cpu = 0;  // the last as a fraction of the run
  unsigned cores = 1;
  std::vector<std::string> warnings;  // e.g. the client was likely the bottleneck

  double rps() const { return seconds > 0 ? static_cast<double>(requests) / seconds : 0; }
  bool clean() const { return errors.total() == 0; }
};

class LoadGenerator {
 public:
  explicit LoadGenerator(LoadConfig config);
  ~LoadGenerator();
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Connects, runs until the duration or request count is reached or stop()
  // is called, and returns the summary. `on_interval` is called on the
  // calling thread once a second. Throws std::system_error (naming the
  // address) when the server cannot be reached at all.
  Summary run(const std::function<void(const IntervalReport&)>& on_interval = {});

  // Thread-safe: ends the run early (the summary covers what was measured).
  void stop();

 private:
  struct Shared;
  class Worker;
  std::unique_ptr<Shared> shared_;
};

}  // namespace fib
