#include "sequential_engine.h"

#include <string>
#include <system_error>

#include "blocking.h"
#include "fib/net/thread_wake.h"

namespace fib {

void SequentialEngine::run() {
  accept_thread_wake();  // this thread serves the connections: a stop wakes it
  thread_.store(::pthread_self(), std::memory_order_release);
  accept_blocking(context_, [this](Fd fd, Ticket ticket) { serve(std::move(fd), ticket); });
}

void SequentialEngine::serve(Fd fd, Ticket& ticket) {
  {
    const std::lock_guard lock(mutex_);
    serving_ = fd.get();
  }
  ticket.close_after([&] { return serve_blocking(fd.get(), context_, counters_); });
  {
    const std::lock_guard lock(mutex_);
    fd.reset();  // closed under the lock, so a stop never shortens a reused descriptor's timeout
    serving_ = -1;
  }
}

// A signal interrupts the receive of the connection being served, if any,
// or the accept, which a stop ends anyway.
void SequentialEngine::wake() {
  if (const pthread_t thread = thread_.load(std::memory_order_acquire); thread != pthread_t{}) fib::wake(thread);
}

void SequentialEngine::abandon() {
  const std::lock_guard lock(mutex_);
  if (serving_ >= 0) give_sends_grace(serving_);
}

void SequentialEngine::add_to(ServerStats& stats) const { counters_.add_to(stats.replies, stats.service_times); }

}  // namespace fib
