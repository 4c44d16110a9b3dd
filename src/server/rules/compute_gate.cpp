#include "compute_gate.h"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "fib/core/clock.h"
#include "fib/core/session.h"
#include "fib/net/socket.h"
#include "rules.h"

namespace fib {

ComputeGate::Turn ComputeGate::enter(Cancel& cancel) {
  std::unique_lock lock(mutex_);
  if (limit_ == 0 || (running_ < limit_ && queue_.empty())) {
    ++running_;
    return Turn(this);
  }
  Waiter self;
  queue_.push_back(&self);
  while (!self.admitted) {
    if (cancel.requested()) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), &self));
      return Turn();
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

namespace {

// How often a computation looks at its client's socket.
constexpr std::chrono::milliseconds kPeerCheckEvery{10};

// Asks a computation to give up once the server abandons requests (a stop
// past its timeout) or the client has reset the connection.
class PeerWatch final : public Cancel {
 public:
  PeerWatch(int fd, const StopState& stop) : fd_(fd), abandon_(stop.abandon_flag()) {}
  bool requested() override {
    if (abandon_.load(std::memory_order_relaxed) || gone_) return true;
    const Clock::time_point now = Clock::now();  // a few tens of nanoseconds, every fraction of a millisecond
    if (now < next_check_) return false;
    next_check_ = now + kPeerCheckEvery;
    gone_ = peer_reset(fd_);
    return gone_;
  }
  bool peer_gone() const { return gone_; }

 private:
  const int fd_;
  const std::atomic<bool>& abandon_;
  bool gone_ = false;
  Clock::time_point next_check_{};  // the first question looks
};

}  // namespace

Computed compute_slow(Session& session, int fd, const ConnectionRules& rules) {
  PeerWatch watch(fd, *rules.stop);
  if (!watch.requested()) {
    const ComputeGate::Turn turn = rules.gate->enter(watch);
    if (session.compute(&watch)) return Computed::answered;  // gives up at once if the wait was cancelled
  } else if (!watch.peer_gone()) {
    session.compute(&watch);  // the stop's give-up, recorded in the session
  }
  return watch.peer_gone() ? Computed::client_gone : Computed::given_up;
}

}  // namespace fib
