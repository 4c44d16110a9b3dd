// One loop of the uring engine: its ring, its connections and the
// coroutines serving them, its multishot accept and its sweeper.
#pragma once

#include <atomic>
#include <optional>

#include "connection_book.h"
#include "uring_engine.h"

namespace fib {

struct UringEngine::Loop : LoopTotals {
  explicit Loop(UringEngine& engine);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // On the loop's own thread, until a stop has ended every connection.
  void run();
  // From any thread.
  void post_stop() { mailbox.post(&stop_note); }
  void post_abandon() { mailbox.post(&abandon_note); }

  // The rest is the loop thread's, and its coroutines'.
  class Note final : public uring::Completion {
   public:
    Note(Loop& loop, void (Loop::*action)()) : loop_(loop), action_(action) {}
    void complete(int /*result*/, unsigned /*flags*/) override { (loop_.*action_)(); }

   private:
    Loop& loop_;
    void (Loop::*action_)();
  };
  class Timer final : public uring::Completion {
   public:
    Timer(Loop& loop, void (Loop::*action)()) : loop_(loop), action_(action) {}
    void arm(uring::Ring& ring, Clock::duration after);
    void complete(int /*result*/, unsigned /*flags*/) override { (loop_.*action_)(); }

   private:
    Loop& loop_;
    void (Loop::*action_)();
    __kernel_timespec when_{};
  };
  bool finished() const { return stopping_ && connections_.empty() && !accepting_; }
  void stopping();
  void abandoning() { send_limit_ = Clock::now() + Server::kStopGrace; }
  // The sweeper's tick: cuts what waits past its deadline.
  void sweep();
  // Arms the next tick, unless one is armed or the loop has finished.
  void keep_sweeping();
  void accept();
  void accepted(int result, unsigned flags);
  void hand_over(Fd fd);
  void welcome(Fd fd);
  uring::Detached serve(UringConnections::iterator connection);
  void end(UringConnections::iterator connection, const ConnectionResult& result) noexcept;

  UringEngine& engine_;
  const EngineContext& context_;
  uring::Mailbox mailbox;
  std::optional<uring::Ring> ring_;
  UringConnections connections_;
  SpareSessions spares_;
  AcceptPolicy accept_policy_;
  uring::Callback<Loop, &Loop::accepted> acceptor_{*this};  // the multishot accept
  Timer accept_pause_{*this, &Loop::accept};
  Timer sweeper_{*this, &Loop::sweep};
  Note stop_note{*this, &Loop::stopping};
  Note abandon_note{*this, &Loop::abandoning};
  bool stopping_ = false;                                    // seen on this thread
  bool sweeping_ = false;                                    // the sweeper's tick is in flight
  bool accepting_ = false;                                   // the multishot accept (or its pause) is in flight
  Clock::time_point send_limit_ = Clock::time_point::max();  // past a stop's timeout: sends are given up then
};

}  // namespace fib
