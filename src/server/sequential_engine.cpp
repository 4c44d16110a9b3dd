#include "sequential_engine.h"

#include <string>
#include <system_error>

#include "blocking.h"
#include "fib/net/thread_wake.h"

namespace fib {

void SequentialEngine::run() {
  accept_thread_wake();  // this thread serves the connections: a stop wakes it
  thread_.store(::pthread_self(), std::memory_order_release);
  accept_blocking(context_, [this](Fd fd, const Endpoint& peer) { serve(std::move(fd), peer); });
}

void SequentialEngine::serve(Fd fd, const Endpoint& peer) {
  {
    const std::lock_guard lock(mutex_);
    serving_ = fd.get();
  }
  std::string name;
  ConnectionResult result{.end = End::failed};
  try {
    name = peer.to_string();
    result = serve_blocking(fd.get(), context_, counters_);
  } catch (...) {
    // Out of memory: the connection ends all the same.
  }
  {
    const std::lock_guard lock(mutex_);
    fd.reset();  // closed under the lock, so a stop never shortens a reused descriptor's timeout
    serving_ = -1;
  }
  context_.book.ended(name, result);
}

// A signal interrupts the receive of the connection being served, if any,
// or the accept, which a stop ends anyway.
void SequentialEngine::wake() {
  if (const pthread_t thread = thread_.load(std::memory_order_acquire); thread != pthread_t{}) fib::wake(thread);
}

void SequentialEngine::abandon() {
  const std::lock_guard lock(mutex_);
  if (serving_ < 0) return;
  try {  // a send in progress starts again under this timeout when the next wake() interrupts it
    set_send_timeout(serving_, Server::kStopGrace);
  } catch (const std::system_error&) {
  }
}

void SequentialEngine::add_to(ServerStats& stats) const { counters_.add_to(stats.replies, stats.service_times); }

}  // namespace fib
