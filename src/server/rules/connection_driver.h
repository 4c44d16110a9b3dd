// One connection's rules, without I/O: which step comes next (receive,
// send, compute, close), until when, and how the connection ended. Every
// engine runs the same driver and supplies only the steps themselves, so the
// goodbye lines, the idle and stall deadlines, the stop and the counting are
// written once:
//
//   for (;;) {
//     const Step step = driver.next();
//     switch (step.what) { ... do it, and tell the driver how it went ... }
//   }
//
// The rules: every request read is answered, in order; replies waiting are
// sent before a slow request is started; a stop ends the connection before
// its next receive with the stopping line; a connection that completes no
// valid request for the idle timeout is told so and closed, one whose
// replies stay unsent that long is cut off (stalled); every last line is
// followed by a graceful close, so that no reply sent is lost to a reset.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "compute_gate.h"
#include "connection_counters.h"
#include "fib/core/clock.h"
#include "fib/core/request_handler.h"
#include "fib/core/session.h"
#include "fib/server/outcomes.h"
#include "rules.h"

namespace fib {

struct ConnectionResult {
  End end = End::closed;
  int error = 0;              // errno, for End::failed
  std::uint64_t replies = 0;  // sent, error lines included (not a closing connection's last line)
  std::uint64_t errors = 0;   // error lines sent, the same way
};

// How long, and how many bytes, a graceful close keeps reading and
// discarding at most.
struct CloseLimits {
  Clock::time_point until;
  std::size_t max_bytes;
};

// Sessions no connection holds: a connection with nothing pending hands its
// session (and the buffers in it) back, and takes one again when input
// arrives (see Session::Rest). One thread's: not thread-safe.
class SpareSessions {
 public:
  SpareSessions(const RequestHandler& handler, const StopState& stop) : handler_(handler), stop_(stop) {}
  std::unique_ptr<Session> take();
  void give_back(std::unique_ptr<Session> session);

 private:
  static constexpr std::size_t kMaxSpares = 64;
  const RequestHandler& handler_;
  const StopState& stop_;
  std::vector<std::unique_ptr<Session>> spares_;
};

class ConnectionDriver {
 public:
  enum class Do { receive, send, compute, close, done };
  struct Step {
    Do what = Do::done;
    Clock::time_point deadline = Clock::time_point::max();  // receive, send: when to give up waiting
    std::span<char> space{};                                // receive: into here
    std::string_view bytes{};                               // send: all of these
    Session* session = nullptr;                             // compute: compute_slow() this
    CloseLimits limits{};                                   // close: close gracefully within these
  };
  // Why a receive or a send did not complete.
  enum class Cut { deadline, stopping, error };

  // Replies sent are counted in `counters`. A connection that keeps one
  // session all its life (on its thread's stack) drives `session`; one that
  // takes a session from `spares` only while it has something pending gives
  // it back whenever it is at rest, and receives at rest into a few bytes of
  // the driver's own.
  ConnectionDriver(const ConnectionRules& rules, ConnectionCounters& counters, Session& session);
  ConnectionDriver(const ConnectionRules& rules, ConnectionCounters& counters, SpareSessions& spares);
  ~ConnectionDriver();
  ConnectionDriver(const ConnectionDriver&) = delete;
  ConnectionDriver& operator=(const ConnectionDriver&) = delete;

  // The next step; asked again before the last one is reported, the same one.
  Step next();
  // What the step asked for happened. `now`: just after the receive;
  // `more_waiting`: the receive filled its space and more input is queued.
  void received(std::size_t n, bool more_waiting, Clock::time_point now);
  void sent();
  void computed(Computed how);
  // It did not: the deadline passed, a stop interrupted it, or `error`.
  void receive_cut(Cut why, int error = 0);
  void send_cut(Cut why, int error = 0);

  // Waiting to receive with nothing pending: no session held.
  bool at_rest() const { return session_ == nullptr; }
  // When a connection at rest is idle.
  Clock::time_point idle_deadline() const { return rules_.idle.deadline(last_valid_); }
  const ConnectionResult& result() const { return result_; }

 private:
  enum class State { receive, answer, flush, sending, compute, round_end, say_last_line, close, done };

  Session& session();
  void answer();
  void round_end();
  void flush(State then, Clock::time_point started);
  void goodbye(End how);
  void end(End how, int error = 0);

  const ConnectionRules& rules_;
  ConnectionCounters& counters_;
  SpareSessions* const spares_;
  Session* session_ = nullptr;     // none at rest, with spares
  std::unique_ptr<Session> lent_;  // what spares lent
  Session::Rest rest_;             // what the connection keeps while at rest
  State state_ = State::receive;
  State after_send_ = State::done;
  bool more_waiting_ = false;
  ConnectionResult result_;
  Clock::time_point last_valid_ = Clock::now();  // the idle rule's clock: the last valid request answered
  Clock::time_point received_at_;                // what every reply sent since answers arrived then
  Clock::time_point sent_at_;
  Clock::time_point send_from_;                     // the stall rule's clock for the send asked for
  static constexpr std::size_t kArrivedBytes = 32;  // a request or two
  std::array<char, kArrivedBytes> arrived_;         // a receive at rest reads into these
};

}  // namespace fib
