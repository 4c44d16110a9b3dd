#include "worker_pool.h"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <chrono>
#include <optional>

#include "fib/core/clock.h"
#include "rules/priority.h"

namespace fib {

namespace {

constexpr std::chrono::microseconds kWorkerSpin{100};

}  // namespace

struct WorkerPool::Queue {
  explicit Queue(unsigned threads) : io(static_cast<int>(threads)) {}

  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keep;
};

WorkerPool::WorkerPool(unsigned threads) : queue_(std::make_unique<Queue>(threads)), count_(threads) {}

WorkerPool::~WorkerPool() { join(); }

void WorkerPool::start() {
  queue_->keep.emplace(queue_->io.get_executor());
  threads_.reserve(count_);
  for (unsigned i = 0; i < count_; ++i) threads_.emplace_back([this] { run(); });
}

void WorkerPool::join() {
  queue_->keep.reset();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void WorkerPool::post(std::function<void()> work) { asio::post(queue_->io, std::move(work)); }

asio::io_context& WorkerPool::context() { return queue_->io; }

// Out of work, a worker keeps looking for the next piece for kWorkerSpin
// before it sleeps. Waking a sleeping thread costs tens of microseconds on a
// virtual machine, a slow request a millisecond or more: a client asking for
// one after another (fib(30) in a closed loop) would otherwise pay that
// wake-up on every request.
void WorkerPool::run() {
  lower_priority();
  asio::io_context& io = queue_->io;
  Clock::time_point spin_until = Clock::now() + kWorkerSpin;
  for (;;) {
    if (io.poll_one() > 0) {
      spin_until = Clock::now() + kWorkerSpin;
    } else if (Clock::now() >= spin_until) {
      if (io.run_one() == 0) return;  // no work left, none to come: the server has stopped
      spin_until = Clock::now() + kWorkerSpin;
    }
  }
}

}  // namespace fib
