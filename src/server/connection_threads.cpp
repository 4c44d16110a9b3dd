// The connection threads: one per live connection, parked between
// connections and reused, joined when they retire.
#include <utility>

#include "fib/net/thread_wake.h"
#include "fib/server/server.h"
#include "priority.h"

namespace fib {

// Gives the connection to a parked thread, or to a new one.
void Server::hand_over(Fd fd, const Endpoint& peer, LiveList::iterator self, std::unique_lock<std::mutex>& lock) {
  if (!parked_.empty()) {
    ConnectionThread* worker = parked_.back();
    parked_.pop_back();
    self->thread = worker->thread.native_handle();
    worker->job = Job{fd.release(), peer, self};
    worker->wake.notify_one();
    return;
  }
  try {
    const auto worker = threads_.emplace(threads_.end());
    worker->job = Job{fd.get(), peer, self};
    try {
      worker->thread = std::thread([this, worker] { work(worker); });
      self->thread = worker->thread.native_handle();
    } catch (...) {
      threads_.erase(worker);
      throw;
    }
    fd.release();                      // the thread has it now; on failure it is still ours to answer and close
  } catch (const std::exception& e) {  // std::system_error, or std::bad_alloc
    live_.erase(self);
    lock.unlock();
    turn_away(std::move(fd), peer, e.what());
  }
}

// A connection thread's life: serve, park, serve again; retire when the
// server stops or enough threads are parked already.
void Server::work(ConnectionThreadList::iterator self) {
  accept_thread_wake();
  // The first job was handed over before this thread started: no lock is
  // needed to read it, and none is taken (hundreds of threads starting at
  // once would otherwise queue for it, a stop's among them).
  Job job = *std::exchange(self->job, std::nullopt);
  std::unique_lock lock(mutex_, std::defer_lock);
  for (;;) {
    serve(Fd(job.fd), job.peer, job.self);
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

void Server::drain() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return live_.empty() && threads_.empty(); });
  std::thread last = std::move(last_retired_);
  lock.unlock();
  if (last.joinable()) last.join();
}

}  // namespace fib
