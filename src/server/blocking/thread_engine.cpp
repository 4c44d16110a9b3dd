#include "thread_engine.h"

#include <exception>
#include <string>
#include <system_error>
#include <utility>

#include "blocking.h"
#include "fib/net/thread_wake.h"
#include "rules/priority.h"

namespace fib {

ThreadEngine::ThreadEngine(const EngineContext& context) : context_(context) {
  parked_.reserve(kMaxParkedThreads);  // parking never allocates, even out of memory
}

ThreadEngine::~ThreadEngine() { drain(); }

void ThreadEngine::run() {
  try {
    accept_blocking(context_, [this](Fd fd, Ticket ticket) { hand_over(std::move(fd), std::move(ticket)); });
  } catch (...) {
    context_.stop_server();  // whatever failed, no connection thread outlives run()
    drain();
    throw;
  }
  drain();
}

// Registers the connection and gives it to a parked thread, or to a new one.
void ThreadEngine::hand_over(Fd fd, Ticket ticket) {
  std::unique_lock lock(mutex_);
  LiveList::iterator self;
  try {
    self = live_.emplace(live_.end());
  } catch (const std::bad_alloc&) {
    lock.unlock();
    ticket.turn_away(fd.get(), Refusal::no_thread, "out of memory");
    return;
  }
  self->fd = fd.get();
  if (parked_.empty()) return start_thread(fd, ticket, self, lock);
  ConnectionThread* worker = parked_.back();
  parked_.pop_back();
  self->thread = worker->thread.native_handle();
  worker->job = Job{fd.release(), std::move(ticket), self};
  worker->wake.notify_one();
}

void ThreadEngine::start_thread(Fd& fd, Ticket& ticket, LiveList::iterator self, std::unique_lock<std::mutex>& lock) {
  try {
    const auto worker = threads_.emplace(threads_.end());
    worker->job = Job{fd.get(), std::move(ticket), self};
    try {
      worker->thread = std::thread([this, worker] { connection_thread(worker); });
      self->thread = worker->thread.native_handle();
    } catch (...) {
      ticket = std::move(worker->job->ticket);
      threads_.erase(worker);
      throw;
    }
    fd.release();                      // the thread has it now; on failure it is still ours to answer and close
  } catch (const std::exception& e) {  // std::system_error, or std::bad_alloc
    live_.erase(self);
    lock.unlock();
    ticket.turn_away(fd.get(), Refusal::no_thread, e.what());
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
void ThreadEngine::serve(Job& job) {
  Fd fd(job.fd);
  job.ticket.close_after([&] { return serve_blocking(fd.get(), context_, job.self->counters); });
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
  for (const Live& live : live_) give_sends_grace(live.fd);
}

void ThreadEngine::add_to(ServerStats& stats) const {
  std::lock_guard lock(mutex_);
  stats.replies += closed_replies_;
  stats.service_times += closed_service_times_;
  for (const Live& live : live_) live.counters.add_to(stats.replies, stats.service_times);
  stats.threads = ServerStats::Threads{.busy = threads_.size() - parked_.size(), .parked = parked_.size()};
}

}  // namespace fib
