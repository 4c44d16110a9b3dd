// C++20 coroutines on io_uring: `--threads` loops, each with a ring of its
// own (uring.h) that accepts on the shared listener (multishot) and deals
// the connections to the loops in turn (the kernel wakes one loop's accept
// for most of them). Each serves its connections as coroutines, every
// receive and send an operation on the ring, submitted together with the
// next wait; slow requests go to the same low-priority WorkerPool as the
// coroutine mode's. A sweeper per loop, on a timeout through the ring,
// cancels what waits past its deadline; a stop cancels every receive.
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

#include "connection_counters.h"
#include "connection_driver.h"
#include "engine.h"
#include "loop_engine.h"
#include "uring.h"

namespace fib {

struct UringConnection {
  enum class Waiting { nothing, receive, send };
  UringConnection(Fd connected, std::string peer, const EngineContext& context, ConnectionCounters& totals,
                  SpareSessions& spares)
      : fd(std::move(connected)), name(std::move(peer)), driver(context.rules, totals, spares) {}

  Fd fd;
  std::string name;  // the peer's address, for the log
  Waiting waiting = Waiting::nothing;
  Clock::time_point deadline = Clock::time_point::max();
  bool expired = false;                    // the sweeper cancelled the wait: past its deadline
  uring::Completion* in_flight = nullptr;  // the operation it waits for, if any
  ConnectionDriver driver;
};
using UringConnections = std::list<UringConnection>;

class UringEngine final : public LoopEngine {
 public:
  // Throws std::runtime_error saying why when io_uring cannot be set up.
  explicit UringEngine(const EngineContext& context);
  ~UringEngine() override;

  void stop() override;
  void abandon() override;
  unsigned descriptors_held() const override;

  struct Loop;

 private:
  std::size_t loops() const override { return loops_.size(); }
  void run_loop(std::size_t index) override;
  const LoopTotals& totals(std::size_t index) const override;

  std::vector<std::unique_ptr<Loop>> loops_;
};

}  // namespace fib
