#include "worker_pool.h"

#include <chrono>

#include "fib/core/clock.h"
#include "priority.h"

namespace fib {

namespace {

constexpr std::chrono::microseconds kWorkerSpin{100};

}  // namespace

void WorkerPool::start() {
  keep_.emplace(io_.get_executor());
  threads_.reserve(count_);
  for (unsigned i = 0; i < count_; ++i) threads_.emplace_back([this] { run(); });
}

void WorkerPool::join() {
  keep_.reset();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

// Out of work, a worker keeps looking for the next piece for kWorkerSpin
// before it sleeps. Waking a sleeping thread costs tens of microseconds on a
// virtual machine, a slow request a millisecond or more: a client asking for
// one after another (fib(30) in a closed loop) would otherwise pay that
// wake-up on every request.
void WorkerPool::run() {
  lower_priority();
  Clock::time_point spin_until = Clock::now() + kWorkerSpin;
  for (;;) {
    if (io_.poll_one() > 0) {
      spin_until = Clock::now() + kWorkerSpin;
    } else if (Clock::now() >= spin_until) {
      if (io_.run_one() == 0) return;  // no work left, none to come: the server has stopped
      spin_until = Clock::now() + kWorkerSpin;
    }
  }
}

}  // namespace fib
