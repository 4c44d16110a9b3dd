#include "fib/server/compute_gate.h"

#include <algorithm>

namespace fib {

ComputeGate::Turn ComputeGate::enter(Cancel& cancel) {
  if (limit_ == 0) return Turn();
  std::unique_lock lock(mutex_);
  if (running_ < limit_ && queue_.empty()) {
    ++running_;
    return Turn(this);
  }
  Waiter self;
  queue_.push_back(&self);
  while (!self.admitted) {
    if (cancel.requested()) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), &self));
      Turn none;
      none.held_ = false;
      return none;
    }
    self.turn.wait(lock);
  }
  return Turn(this);
}

void ComputeGate::leave() {
  std::lock_guard lock(mutex_);
  --running_;
  // The next in line, if any, takes the turn given back.
  if (!queue_.empty()) {
    Waiter* next = queue_.front();
    queue_.pop_front();
    next->admitted = true;
    ++running_;
    next->turn.notify_one();
  }
}

void ComputeGate::wake_all() {
  std::lock_guard lock(mutex_);
  for (Waiter* waiter : queue_) waiter->turn.notify_one();
}

std::uint64_t ComputeGate::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

std::uint64_t ComputeGate::waiting() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace fib
