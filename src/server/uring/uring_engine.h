// C++20 coroutines on io_uring: `--threads` loops, each with a ring of its
// own (uring.h) that accepts on the shared listener (multishot) and deals
// the connections to the loops in turn (the kernel wakes one loop's accept
// for most of them). Each serves its connections as coroutines: a
// connection's receive is armed once and stays armed (multishot), taking a
// buffer from the loop's ring of them only when bytes arrive; every send is
// an operation on the ring, submitted together with the next wait; slow
// requests go to the same low-priority WorkerPool as the coroutine mode's.
// A sweeper per loop, on a timeout through the ring, ends what waits past
// its deadline; a stop wakes every connection waiting for input.
// Everything a loop owns is touched by its thread only, apart from the
// mailbox and the atomic totals.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine.h"
#include "loop/loop_engine.h"
#include "rules/connection_counters.h"
#include "rules/connection_driver.h"
#include "uring.h"
#include "uring_loop.h"

namespace fib {

class UringEngine final : public LoopEngine, UringLoops {
 public:
  // Throws std::runtime_error saying why when io_uring cannot be set up.
  explicit UringEngine(const EngineContext& context);
  ~UringEngine() override;

  void stop() override;
  void abandon() override;
  unsigned descriptors_held() const override;

 private:
  UringLoop& next() override { return *loops_[next_loop()]; }
  void failed(std::exception_ptr error) override { fail(std::move(error)); }
  std::size_t loops() const override { return loops_.size(); }
  void run_loop(std::size_t index) override;
  const LoopTotals& totals(std::size_t index) const override;

  std::vector<std::unique_ptr<UringLoop>> loops_;
};

}  // namespace fib
