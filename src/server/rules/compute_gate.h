// How many slow requests are computed at once, whatever the mode: at most
// `limit` (by default one per CPU), the others waiting their turn in the
// order they came. With more computations than CPUs, each would get a share
// of a core and quick requests would wait for one behind them; with at most
// one per CPU, a quick request finds a core at once. Go sets no such limit.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>

#include "fib/core/fib.h"

namespace fib {

class Session;
struct ConnectionRules;

class ComputeGate {
 public:
  // 0: no limit.
  explicit ComputeGate(unsigned limit) : limit_(limit) {}
  ComputeGate(const ComputeGate&) = delete;
  ComputeGate& operator=(const ComputeGate&) = delete;

  // A turn to compute, given back when it is destroyed (with no limit too,
  // so that running() counts every computation); none (nothing to give
  // back) when the wait for it was cancelled.
  class Turn {
   public:
    Turn() = default;
    explicit Turn(ComputeGate* gate) : gate_(gate) {}
    Turn(Turn&& other) noexcept : gate_(other.gate_) { other.gate_ = nullptr; }
    Turn& operator=(Turn&&) = delete;
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    ~Turn() {
      if (gate_ != nullptr) gate_->leave();
    }

   private:
    ComputeGate* gate_ = nullptr;  // to give the turn back to
  };

  // Waits for a turn. Gives up, with no turn, when `cancel` asks to at the
  // start or once wake_all() has been called: the computation, asking the
  // same Cancel, then gives up at once.
  Turn enter(Cancel& cancel);
  // Has every waiter ask its Cancel again: call after setting what it reads
  // (a stop giving up on requests).
  void wake_all();

  unsigned limit() const { return limit_; }
  // Computations running (with or without a limit), and waiting for a turn.
  std::uint64_t running() const;
  std::uint64_t waiting() const;

 private:
  struct Waiter {
    std::condition_variable turn;
    bool admitted = false;
  };
  void leave();

  const unsigned limit_;
  mutable std::mutex mutex_;
  unsigned running_ = 0;
  std::deque<Waiter*> queue_;  // first come, first served
};

// How compute_slow() ended.
enum class Computed {
  answered,     // the answer is in the session's output
  given_up,     // the server stopped waiting for it (see Session::compute)
  client_gone,  // the client reset the connection: it would never read the answer
};

// Computes the slow request `session` stopped at, on the calling thread, once
// rules.gate gives it a turn. Gives up when the server does (a stop past its
// timeout) or when the client on `fd` resets the connection, which is looked
// at before waiting for a turn and every few milliseconds of the computation:
// on a shared machine, work for a client that has gone holds up everyone
// else. A client that only ended its side (half-close) is still answered.
Computed compute_slow(Session& session, int fd, const ConnectionRules& rules);

}  // namespace fib
