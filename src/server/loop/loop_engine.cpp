#include "loop_engine.h"

#include <latch>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace fib {

LoopEngine::LoopEngine(const EngineContext& context, const char* loops_are)
    : context_(context), workers_(context.workers), loops_are_(loops_are) {}

void LoopEngine::run() {
  std::vector<std::thread> threads;
  // A loop whose thread has ended waits for the others: no thread is left
  // finished and unjoined while another loop still serves (a second signal
  // exits at once, and ThreadSanitizer counts such a thread as leaked).
  std::latch ended(static_cast<std::ptrdiff_t>(loops()));
  const auto run_and_wait = [this, &ended](std::size_t index) {
    run_loop(index);
    ended.arrive_and_wait();
  };
  try {
    workers_.start();
    for (std::size_t i = 1; i < loops(); ++i) threads.emplace_back(run_and_wait, i);
    run_and_wait(0);
  } catch (...) {
    ended.count_down(static_cast<std::ptrdiff_t>(loops() - threads.size()));  // this one and those never started
    fail(std::current_exception());                                           // stops the server: the loops started end
  }
  for (std::thread& thread : threads) thread.join();
  workers_.join();
  if (failure_) std::rethrow_exception(failure_);
}

void LoopEngine::fail(std::exception_ptr error) {
  {
    const std::lock_guard lock(failure_mutex_);
    if (!failure_) failure_ = std::move(error);
  }
  context_.stop_server();
}

void LoopEngine::add_to(ServerStats& stats) const {
  ServerStats::Loops loops{.threads = static_cast<unsigned>(this->loops()), .workers = workers_.size()};
  for (std::size_t i = 0; i < this->loops(); ++i) {
    const LoopTotals& loop = totals(i);
    loop.replies.add_to(stats.replies, stats.service_times);
    loops.at_workers += loop.at_workers.load(std::memory_order_relaxed);
    loops.buffer_shortages += loop.buffer_shortages.load(std::memory_order_relaxed);
    loops.parked += loop.parked_connections.load(std::memory_order_relaxed);
    loops.cpu_ns += loop.clock.cpu_ns();
    loops.open.push_back(loop.open.load(std::memory_order_relaxed));
  }
  stats.loops = loops;
}

std::string LoopEngine::describe() const {
  return fmt::format(", {} {}, {} workers", loops(), loops_are_, workers_.size());
}

}  // namespace fib
