#include "uring_engine.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <asio/post.hpp>
#include <latch>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "uring_loop.h"

namespace fib {

namespace {

unsigned or_cpus(unsigned n) { return n != 0 ? n : usable_cpus(); }

// Each loop's own descriptors: its ring and its mailbox's eventfd.
constexpr unsigned kDescriptorsPerLoop = 2;

}  // namespace

UringEngine::UringEngine(const EngineContext& context) : context_(context), workers_(or_cpus(context.config.workers)) {
  uring::check_available();
  for (unsigned i = 0; i < or_cpus(context.config.threads); ++i)
    loops_.push_back(std::make_unique<Loop>(context, workers_, [this](std::exception_ptr e) { fail(std::move(e)); }));
}

UringEngine::~UringEngine() = default;

unsigned UringEngine::descriptors_held() const { return kDescriptorsPerLoop * static_cast<unsigned>(loops_.size()); }

std::string UringEngine::describe() const {
  return fmt::format(", {} io_uring loops, {} workers", loops_.size(), workers_.size());
}

void UringEngine::run() {
  std::vector<std::thread> threads;
  // As the coroutine mode's: a loop whose thread has ended waits for the
  // others, so that no ended thread is left unjoined while another serves.
  std::latch ended(static_cast<std::ptrdiff_t>(loops_.size()));
  const auto run_and_wait = [this, &ended](Loop& loop) {
    run_loop(loop);
    ended.arrive_and_wait();
  };
  try {
    workers_.start();
    for (std::size_t i = 1; i < loops_.size(); ++i) threads.emplace_back(run_and_wait, std::ref(*loops_[i]));
    run_and_wait(*loops_[0]);
  } catch (...) {
    ended.count_down(static_cast<std::ptrdiff_t>(loops_.size() - threads.size()));  // this one and those never started
    fail(std::current_exception());  // stops the server: the loops started end
  }
  for (std::thread& thread : threads) thread.join();
  workers_.join();
  if (failure_) std::rethrow_exception(failure_);
}

void UringEngine::run_loop(Loop& loop) {
  try {
    loop.run();
  } catch (...) {
    fail(std::current_exception());  // the ring itself failed: this loop's connections are lost
  }
}

void UringEngine::fail(std::exception_ptr error) {
  {
    const std::lock_guard lock(failure_mutex_);
    if (!failure_) failure_ = std::move(error);
  }
  context_.stop_server();
}

void UringEngine::stop() {
  for (const auto& loop : loops_) loop->post_stop();
}

void UringEngine::abandon() {
  for (const auto& loop : loops_) loop->post_abandon();
}

void UringEngine::add_to(ServerStats& stats) const {
  ServerStats::Loops loops{.threads = static_cast<unsigned>(loops_.size()), .workers = workers_.size()};
  for (const auto& loop : loops_) {
    loop->totals.add_to(stats.replies, stats.service_times);
    loops.at_workers += loop->at_workers.load(std::memory_order_relaxed);
    loops.cpu_ns += loop->clock.cpu_ns();
  }
  stats.loops = loops;
}

}  // namespace fib
