// The requests one client connection has sent and not yet had answered,
// oldest first: when each was due and when it went out. Answers come back in
// order, so the oldest is the one the next answer belongs to. A ring the
// size of the pipeline: nothing is allocated after construction. Pure.
#pragma once

#include <cstddef>
#include <vector>

#include "fib/core/clock.h"

namespace fib {

class InFlight {
 public:
  struct Request {
    Clock::time_point due;   // by the schedule (the send time in a closed loop)
    Clock::time_point sent;  // when it went out
  };

  explicit InFlight(std::size_t capacity) : ring_(capacity) {}

  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // How many more may be sent before the pipeline is full.
  std::size_t room() const { return ring_.size() - count_; }

  // Requires room() > 0.
  void push(Request request) {
    ring_[(head_ + count_) % ring_.size()] = request;
    ++count_;
  }
  // The i-th oldest; requires i < size().
  const Request& operator[](std::size_t i) const { return ring_[(head_ + i) % ring_.size()]; }
  // Removes and returns the oldest; requires !empty().
  Request pop() {
    const Request oldest = ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    --count_;
    return oldest;
  }
  // Forgets them all: the connection they were sent on is gone.
  void clear() { head_ = count_ = 0; }

 private:
  std::vector<Request> ring_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
};

}  // namespace fib
