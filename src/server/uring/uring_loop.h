// One loop of the uring engine: its ring, its connections and the
// coroutines serving them, its multishot accept and its sweeper.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine.h"
#include "loop/loop_engine.h"
#include "loop/sweep.h"
#include "loop/worker_pool.h"
#include "rules/connection_book.h"
#include "rules/connection_driver.h"
#include "uring.h"

namespace fib {

struct UringLoop;

// What a loop asks of the engine that runs the loops.
class UringLoops {
 public:
  // The loop the next connection accepted is dealt to (LoopEngine::next_loop).
  virtual UringLoop& next() = 0;
  // A loop cannot go on: the failure is kept, and the server stops.
  virtual void failed(std::exception_ptr error) = 0;

 protected:
  UringLoops() = default;
  ~UringLoops() = default;
  UringLoops(const UringLoops&) = default;
  UringLoops& operator=(const UringLoops&) = default;
};

// One connection of a uring loop: its socket, its driver, what its
// coroutine waits for, and its input. Its receive is one multishot
// operation, armed while the connection may take input: what arrives while
// the coroutine does something else is copied to `early` (the buffer goes
// back to the loop at once), and past kMaxEarlyBytes the receive is
// cancelled until the coroutine has taken them, so that a client sending
// without reading meets TCP's flow control, as with a receive per request.
struct UringConnection {
  static constexpr std::size_t kMaxEarlyBytes = std::size_t{64} * 1024;

  // What the multishot receive completes.
  class Input final : public uring::Completion {
   public:
    Input(UringLoop& loop, UringConnection& connection) : loop_(loop), connection_(connection) {}
    void complete(int result, unsigned flags) override;

   private:
    UringLoop& loop_;
    UringConnection& connection_;
  };

  UringConnection(UringLoop& loop, Fd connected, Ticket admitted, const EngineContext& context,
                  ConnectionCounters& totals, SpareSessions& spares)
      : ticket(std::move(admitted)),
        fd(std::move(connected)),
        driver(context.rules, totals, spares),
        input(loop, *this) {}

  // Takes early input into `space`: the count taken, or the end of input
  // (0, or -errno) once every early byte is taken; nullopt: nothing yet.
  std::optional<int> take(std::span<char> space);
  // Bytes received and not taken yet.
  std::size_t early_bytes() const { return early.size() - early_from; }

  Ticket ticket;  // its place in the book (the peer's address, for the log)
  Fd fd;
  Wait wait;
  uring::Completion* in_flight = nullptr;  // the send it waits for, if any
  ConnectionDriver driver;

  Input input;
  bool armed = false;              // the multishot receive is in the kernel
  bool cancelling = false;         // a cancel of it is on its way
  bool closing = false;            // no more input is wanted: the graceful close reads what else comes
  bool starved = false;            // the loop had no buffer for it: armed again once buffers are back
  std::optional<int> input_end;    // end of stream (0) or -errno, once early input is taken
  std::string early;               // received before the coroutine asked for it
  std::size_t early_from = 0;      // the first byte of `early` not taken yet
  std::coroutine_handle<> waiter;  // waits for input, or for the receive to end
  std::span<char> space;           // a waiting receive's
  int got = 0;                     // what it got: a count, 0 at the end, or -errno
};
using UringConnections = std::list<UringConnection>;

struct UringLoop : LoopTotals {
  UringLoop(const EngineContext& context, WorkerPool& workers, UringLoops& loops);
  ~UringLoop();
  UringLoop(const UringLoop&) = delete;
  UringLoop& operator=(const UringLoop&) = delete;

  // On the loop's own thread, until a stop has ended every connection.
  void run();
  // From any thread.
  void post_stop() { mailbox.post(&stop_note); }
  void post_abandon() { mailbox.post(&abandon_note); }

  // The rest is the loop thread's, and its coroutines'.
  class Note final : public uring::Completion {
   public:
    Note(UringLoop& loop, void (UringLoop::*action)()) : loop_(loop), action_(action) {}
    void complete(int /*result*/, unsigned /*flags*/) override { (loop_.*action_)(); }

   private:
    UringLoop& loop_;
    void (UringLoop::*action_)();
  };
  class Timer final : public uring::Completion {
   public:
    Timer(UringLoop& loop, void (UringLoop::*action)()) : loop_(loop), action_(action) {}
    void arm(uring::Ring& ring, Clock::duration after);
    void complete(int /*result*/, unsigned /*flags*/) override { (loop_.*action_)(); }

   private:
    UringLoop& loop_;
    void (UringLoop::*action_)();
    __kernel_timespec when_{};
  };
  bool finished() const { return stopping_ && connections_.empty() && !accepting_; }
  void stopping();
  void abandoning() { send_limit_ = Clock::now() + StopState::kGrace; }
  // The sweeper's tick: cuts what waits past its deadline.
  void sweep();
  // Arms the next tick, unless one is armed or the loop has finished.
  void keep_sweeping();
  void accept();
  void accepted(int result, unsigned flags);
  void hand_over(Fd fd);
  void welcome(Fd fd);
  // The multishot receive: armed when input is wanted; what it completes.
  void arm(UringConnection& connection);
  void input(UringConnection& connection, int result, unsigned flags);
  // Wakes the coroutine waiting for input with `result`.
  static void wake(UringConnection& connection, int result);
  // Arms again the receives that found no buffer, now that buffers are back.
  void feed_starved();
  uring::Detached serve(UringConnections::iterator connection);
  void end(UringConnections::iterator connection, const ConnectionResult& result) noexcept;

  const EngineContext& context_;
  WorkerPool& workers_;
  UringLoops& loops_;
  uring::Mailbox mailbox;
  std::optional<uring::Ring> ring_;
  std::optional<uring::BufferRing> buffers_;
  UringConnections connections_;
  std::vector<UringConnection*> starved_;  // receives ended for want of a buffer
  SpareSessions spares_;
  AcceptPolicy accept_policy_;
  uring::Callback<UringLoop, &UringLoop::accepted> acceptor_{*this};  // the multishot accept
  Timer accept_pause_{*this, &UringLoop::accept};
  Timer sweeper_{*this, &UringLoop::sweep};
  Note stop_note{*this, &UringLoop::stopping};
  Note abandon_note{*this, &UringLoop::abandoning};
  bool stopping_ = false;                                    // seen on this thread
  bool sweeping_ = false;                                    // the sweeper's tick is in flight
  bool accepting_ = false;                                   // the multishot accept (or its pause) is in flight
  Clock::time_point send_limit_ = Clock::time_point::max();  // past a stop's timeout: sends are given up then
};

}  // namespace fib
