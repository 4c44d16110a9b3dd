// What the engines with event loops share (the coroutine and uring modes):
// a thread per loop, the first one run()'s caller; the workers for slow
// requests; the first failure, which stops the server; and the statistics
// each loop keeps.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>

#include "engine.h"
#include "loop_clock.h"
#include "rules/connection_counters.h"
#include "worker_pool.h"

namespace fib {

// One loop's figures: written by its thread, read by statistics.
struct LoopTotals {
  ConnectionCounters replies;                        // sent by the loop's connections, closed ones included
  std::atomic<std::uint64_t> at_workers{0};          // slow requests handed to the workers, not back yet
  LoopClock clock;                                   // the CPU time of the loop's thread
  std::atomic<std::uint64_t> buffer_shortages{0};    // receives that found no buffer free (uring mode)
  std::atomic<std::uint64_t> open{0};                // connections the loop serves now, parked ones included
  std::atomic<std::uint64_t> parked_connections{0};  // of those, parked: at rest, with no coroutine (coroutine mode)
};

class LoopEngine : public Engine {
 public:
  // Runs every loop until a stop has ended their connections; rethrows
  // what broke one (a broken listener, a ring).
  void run() final;
  void add_to(ServerStats& stats) const final;
  // ", 2 event loops, 2 workers".
  std::string describe() const final;

 protected:
  LoopEngine(const EngineContext& context, const char* loops_are);

  virtual std::size_t loops() const = 0;
  // Runs loop `index` on the calling thread until a stop has ended it.
  virtual void run_loop(std::size_t index) = 0;
  virtual const LoopTotals& totals(std::size_t index) const = 0;
  // Keeps the first failure, and stops the server.
  void fail(std::exception_ptr error);
  // Which loop serves the next connection accepted, whichever loop accepted
  // it: each in turn, so that a few connections do not all land on the loop
  // the kernel happens to wake first.
  std::size_t next_loop() { return next_loop_.fetch_add(1, std::memory_order_relaxed) % loops(); }

  const EngineContext& context_;
  WorkerPool workers_;

 private:
  const char* loops_are_;
  std::mutex failure_mutex_;
  std::exception_ptr failure_;
  std::atomic<std::size_t> next_loop_{0};
};

}  // namespace fib
