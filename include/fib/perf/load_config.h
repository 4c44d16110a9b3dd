// What fib_perf is asked to do and what it reports: the load generator's
// configuration and results, apart from the engine, so that the report
// needs nothing else. Plain data.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fib/core/address.h"
#include "fib/core/clock.h"
#include "fib/core/histogram.h"

namespace fib {

struct LoadConfig {
  HostPort target{"127.0.0.1", 25000};
  unsigned connections = 1;
  unsigned n = 1;                                      // the Fibonacci index sent
  std::optional<Clock::duration> duration;             // measured time, after the warm-up
  std::optional<std::uint64_t> requests;               // stop after this many measured answers
  std::optional<double> rate;                          // total requests per second: open loop
  unsigned pipeline = 1;                               // requests in flight per connection
  Clock::duration warmup{};                            // load applied but not counted
  Clock::duration timeout = std::chrono::seconds(10);  // a request unanswered this long is an error
};

struct ErrorCounts {
  std::uint64_t connect = 0;       // connection attempts that failed
  std::uint64_t reset_or_eof = 0;  // requests lost when the server reset or closed (or said it is stopping)
  std::uint64_t timeout = 0;       // requests unanswered within the timeout
  std::uint64_t error_reply = 0;   // an "error: " line: the server refused the request
  std::uint64_t wrong_answer = 0;  // anything else that is not F(n), or an answer nobody asked for

  std::uint64_t total() const { return connect + reset_or_eof + timeout + error_reply + wrong_answer; }
  ErrorCounts& operator+=(const ErrorCounts& other);
};

// One second of a run, for the live line.
struct IntervalReport {
  Clock::duration since_start{};  // since the measured part began
  std::uint64_t requests = 0;     // correct answers in this interval
  Clock::duration length{};       // of this interval
  std::uint64_t p50_ns = 0, p99_ns = 0;
  std::uint64_t errors = 0;
};

// A time in the measured part when the server answered no connection: from
// its last answer before it failed them (reset or closed them with requests
// in flight, let requests time out, refused reconnections) to its next
// answer on any connection, or to the end of the run.
struct Outage {
  Clock::duration at{};      // since the measured part began: the server's last answer
  Clock::duration length{};  // until its next answer, or the end
  bool to_end = false;       // it never answered again
};

struct Summary {
  LoadConfig config;
  Clock::duration measured{};  // length of the measured part
  // When the server went away: the first few outages (kKeptOutages), how
  // many there were, and their total length, which rps() leaves out.
  static constexpr std::size_t kKeptOutages = 5;
  std::vector<Outage> outages;
  std::uint64_t outage_count = 0;
  Clock::duration not_answering{};
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
  // Connections that asked for answers in the measured part and got none,
  // while others did (a server that serves one connection at a time).
  // Connections that gave up are counted in gave_up instead.
  unsigned starved = 0;
  double min_connection_rps = 0, max_connection_rps = 0;
  // Under --rate: requests due in the measured part, and how many were sent.
  std::uint64_t scheduled = 0, sent = 0, sent_late = 0;
  Clock::duration cpu_user{}, cpu_system{};  // the client's own CPU time
  double busiest_thread_cpu = 0;             // of the busiest connection thread, as a fraction of the run
  unsigned cores = 1;
  std::vector<std::string> warnings;  // e.g. the client was likely the bottleneck
  // The first few distinct replies that were not F(n) (error lines, wrong
  // numbers), as the server sent them, for the user to see what it said.
  std::vector<std::string> unexpected_replies;

  // The measured time the server answered in: all of it but the outages.
  Clock::duration answering() const { return measured - not_answering; }
  // The headline rate: correct answers per second while the server answered
  // (over the whole measured time when it never went away).
  double rps() const { return per_second(answering()); }
  // Averaged over the whole measured time, outages included.
  double rps_whole_run() const { return per_second(measured); }
  // The correct answers per second over `d`.
  double per_second(Clock::duration d) const {
    return d.count() > 0 ? static_cast<double>(requests) / to_seconds(d) : 0;
  }
  // No errors, and the server never went away.
  bool clean() const { return errors.total() == 0 && outage_count == 0; }
};

}  // namespace fib
