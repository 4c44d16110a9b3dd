// fib_perf's engine: drives a fib_server with N connections, closed-loop (as
// fast as answers come back) or open-loop at a fixed rate, checks every
// answer, and gathers latency and error statistics.
//
// Each connection has a thread of its own and its own statistics, guarded by
// a mutex of its own that only the collector also takes (once a second and at
// the end): the request path shares no lock, allocates nothing and prints
// nothing.
#pragma once

#include <functional>
#include <memory>

#include "fib/perf/load_config.h"

namespace fib {

struct LoadRun;

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
  std::unique_ptr<LoadRun> run_;
};

}  // namespace fib
