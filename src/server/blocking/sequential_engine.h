// One connection at a time, served by the accepting thread before it
// accepts the next: the synchronous server of the story. Clients that
// connect meanwhile wait in the listener's backlog.
#pragma once

#include <pthread.h>

#include <atomic>
#include <mutex>

#include "engine.h"
#include "rules/connection_counters.h"

namespace fib {

class SequentialEngine final : public Engine {
 public:
  explicit SequentialEngine(const EngineContext& context) : context_(context) {}

  void run() override;
  void wake() override;
  void abandon() override;
  void add_to(ServerStats& stats) const override;

 private:
  void serve(Fd fd, Ticket& ticket);

  const EngineContext& context_;
  std::atomic<pthread_t> thread_{};  // the one serving, once run() has begun
  ConnectionCounters counters_;
  mutable std::mutex mutex_;  // guards the descriptor below
  int serving_ = -1;          // the connection being served, if any
};

}  // namespace fib
