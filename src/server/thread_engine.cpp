#include "thread_engine.h"

#include <exception>
#include <string>
#include <system_error>
#include <utility>

#include "blocking.h"
#include "fib/net/thread_wake.h"
#include "priority.h"

namespace fib {

ThreadEngine::ThreadEngine(const EngineContext& context) : context_(context) {
  parked_.reserve(kMaxParkedThreads);  // parking never allocates, even out of memory
}

ThreadEngine::~ThreadEngine() { drain(); }

void ThreadEngine::run() {
  try {
    accept_blocking(context_, [this](Fd fd, const Endpoint& peer) { hand_over(std::move(fd), peer); });
  } catch (...) {
    context_.stop_server();  // whatever failed, no connection thread outlives run()
    drain();
    throw;
  }
  drain();
}

// Registers the connection and gives it to a parked thread, or to a new one.
void ThreadEngine::hand_over(Fd fd, const Endpoint& peer) {
  std::unique_lock lock(mutex_);
  LiveList::iterator self;
  try {
    self = live_.emplace(live_.end());
  } catch (const std::bad_alloc&) {
    lock.unlock();
    context_.book.turn_away(fd.get(), peer, "out of memory");
    return;
  }
  self->fd = fd.get();
  if (parked_.empty()) return start_thread(fd, peer, self, lock);
  ConnectionThread* worker = parked_.back();
  parked_.pop_back();
  self->thread = worker->thread.native_handle();
  worker->job = Job{fd.release(), peer, self};
  worker->wake.notify_one();
}

void ThreadEngine::start_thread(Fd& fd, const Endpoint& peer, LiveList::iterator self,
                                std::unique_lock<std::mutex>& lock) {
  try {
    const auto worker = threads_.emplace(threads_.end());
    worker->job = Job{fd.get(), peer, self};
    try {
      worker->thread = std::thread([this, worker] { connection_thread(worker); });
      self->thread = worker->thread.native_handle();
    } catch (...) {
      threads_.erase(worker);
      throw;
    }
    fd.release();                      // the thread has it now; on failure it is still ours to answer and close
  } catch (const std::exception& e) {  // std::system_error, or std::bad_alloc
    live_.erase(self);
    lock.unlock();
    context_.book.turn_away(fd.get(), peer, e.what());
  }
}

// A connection thread's life: serve, park, serve again; retire when the
// server stops or enough threads are parked already.
void ThreadEngine::connection_thread(ConnectionThreadList::iterator self) {
  accept_thread_wake();
  // The first job was handed over before this thread started: no lock is
  // needed to read it, and none is taken (hundreds of threads starting at
  // once would otherwise queue for it, a stop's among them).
  Job job = *std::exchange(self->job, std::nullopt);
  std::unique_lock lock(mutex_, std::defer_lock);
  for (;;) {
    serve(job);
    lock.lock();
    // A thread left at the lower priority of slow requests (where it may not
    // come back) is not kept for the next connection.
    if (stopping_ || parked_.size() >= kMaxParkedThreads || !normal_priority()) break;
    parked_.push_back(&*self);
    self->wake.wait(lock, [&] { return self->job.has_value() || stopping_; });
    if (!self->job) {  // stopping, and still parked
      std::erase(parked_, &*self);
      break;
    }
    job = *std::exchange(self->job, std::nullopt);
    lock.unlock();
  }
  // Retire. Each retiring thread joins the one that retired before it, so at
  // most one ended thread is ever left unjoined, and drain() joins that one.
  std::thread previous = std::exchange(last_retired_, std::move(self->thread));
  threads_.erase(self);
  if (stopping_) changed_.notify_all();
  lock.unlock();
  if (previous.joinable()) previous.join();
}

// Serves one connection, then unregisters it. Never throws: whatever
// happens, the connection ends and is unregistered.
void ThreadEngine::serve(const Job& job) {
  Fd fd(job.fd);
  std::string name;
  ConnectionResult result{.end = End::failed};
  try {
    name = job.peer.to_string();
    result = serve_blocking(fd.get(), context_, job.self->counters);
  } catch (...) {
    // Out of memory: the connection ends, and is unregistered, all the same.
  }
  context_.book.ended(name, result);
  std::lock_guard lock(mutex_);
  fd.reset();  // closed under the lock, so a stop never shortens a reused descriptor's timeout
  job.self->counters.add_to(closed_replies_, closed_service_times_);
  live_.erase(job.self);
  if (stopping_) changed_.notify_all();  // only a stop waits for connections to end
}

void ThreadEngine::drain() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return live_.empty() && threads_.empty(); });
  std::thread last = std::move(last_retired_);
  lock.unlock();
  if (last.joinable()) last.join();
}

// The first call retires the parked threads; every call wakes the threads
// blocked in a receive (see thread_wake.h).
void ThreadEngine::wake() {
  std::lock_guard lock(mutex_);
  if (!stopping_) {
    stopping_ = true;
    changed_.notify_all();
    for (ConnectionThread* worker : parked_) worker->wake.notify_one();
  }
  for (const Live& live : live_) fib::wake(live.thread);
}

void ThreadEngine::abandon() {
  std::lock_guard lock(mutex_);
  for (const Live& live : live_) {
    try {  // a send in progress starts again under this timeout when the next wake() interrupts it
      set_send_timeout(live.fd, Server::kStopGrace);
    } catch (const std::system_error&) {
    }
  }
}

void ThreadEngine::add_to(ServerStats& stats) const {
  std::lock_guard lock(mutex_);
  stats.replies += closed_replies_;
  stats.service_times += closed_service_times_;
  for (const Live& live : live_) live.counters.add_to(stats.replies, stats.service_times);
  stats.threads = ServerStats::Threads{.busy = threads_.size() - parked_.size(), .parked = parked_.size()};
}

}  // namespace fib
