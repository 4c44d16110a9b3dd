// One connection's protocol, without sockets: bytes in, replies out, and what
// the connection should do next. Every way of driving connections runs this
// same session. Pure apart from reading the cancel flag. Not thread-safe:
// one session belongs to one connection.
//
// The rules it keeps: requests are lines (LineFramer); a client that has
// never sent a newline may send one short request with none, taken once
// nothing more is waiting; blank lines get no reply; a bad request gets one
// "error: " line and the connection goes on; replies waiting are sent before
// a slow request is started; a line past kMaxRequestLineBytes gets an
// error line and the connection closes gracefully; at end of stream a
// partial line is a last request; only a valid request counts for the idle
// rule.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "fib/core/line_framer.h"
#include "fib/core/reply_counts.h"
#include "fib/core/request_handler.h"

namespace fib {

class Session {
 public:
  enum class Next {
    receive,           // everything received is answered: send output(), then receive more
    send,              // the reply buffer is full: send output(), then advance() again
    compute,           // a slow request is next: send output() first, then compute(), then advance()
    close_gracefully,  // a line was too long: send output() (its error line last), then close gracefully
    close,             // the client ended its side and everything is answered: send output(), then close
    given_up,          // `cancel` turned true: requests not answered yet are given up
  };

  // Once *cancel (may be null) is true, no further request is answered and a
  // long computation gives up.
  explicit Session(const RequestHandler& handler, const std::atomic<bool>* cancel = nullptr)
      : handler_(handler), cancel_(cancel) {}

  // Where the next receive writes (views from earlier calls are invalidated).
  // Only once advance() has returned Next::receive: a request held for
  // send() or compute() points into the buffer this may move.
  std::span<char> free_space();
  // Records n bytes received into free_space(); 0 means end of stream.
  void received(std::size_t n);

  // Answers what was received, fast requests inline, until the caller has
  // something to do. more_waiting() is asked only when an unterminated
  // request may be complete: true when more input is already queued.
  template <typename MoreWaiting>
  Next advance(MoreWaiting&& more_waiting) {
    for (;;) {
      if (const std::optional<Next> next = step()) return *next;
      if (!partial_checked_) {
        partial_checked_ = true;
        if (end_of_stream_ ? framer_.has_partial() : framer_.partial_may_be_request() && !more_waiting()) {
          held_ = framer_.take_partial();
          continue;
        }
      }
      return end_of_stream_ ? Next::close : Next::receive;
    }
  }

  // Answers the slow request advance() stopped at; false when it was given
  // up because `cancel` turned true, or `also` (may be null: the
  // connection's own reasons, such as a client gone) asked to give up.
  bool compute(Cancel* also = nullptr);

  // Replies waiting to be sent.
  std::string_view output() const { return replies_.view(); }
  // output() went out: it counts as answered. Returns the replies it held.
  ReplyCounts sent();
  // output() could not be sent: it is dropped, and the connection ends.
  void drop_output();

  // True when there is room for a last line without sending first.
  bool room_for_last_line() const { return !replies_.nearly_full(); }
  // The last line of a connection the server closes (not counted as a reply).
  void say_stopping() { RequestHandler::reply_stopping(replies_); }
  void say_idle(std::chrono::milliseconds idle_timeout) { RequestHandler::reply_idle(replies_, idle_timeout); }

  // A session at rest has answered and sent everything it received, and
  // the connection goes on. What it must remember then fits in a Rest, so a
  // connection with nothing pending can hand its session (and the buffers
  // in it) to another, and take one again when input arrives.
  struct Rest {
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
    bool seen_newline = false;  // the unterminated-request rule no longer applies
  };
  bool at_rest() const;
  Rest rest() const { return {requests_, errors_, framer_.seen_newline()}; }
  // Makes this session, at rest, go on from `rest` (another session's).
  void resume(const Rest& rest);

  // Replies sent so far, error lines included (not the last lines above).
  std::uint64_t requests() const { return requests_; }
  // Error lines sent so far.
  std::uint64_t errors() const { return errors_; }
  // True once per valid request answered since the last call: what keeps a
  // connection from being idle.
  bool take_valid_request() { return std::exchange(valid_, false); }

 private:
  // One request, or the over-long line; nullopt when advance() should look
  // at the partial line.
  std::optional<Next> step();
  // Counts a reply appended: an answer, or an error line of `kind`.
  void count_answer();
  void count_error(ErrorKind kind);

  const RequestHandler& handler_;
  const std::atomic<bool>* cancel_;
  CancelFlag cancel_flag_{cancel_};
  LineFramer framer_{kMaxRequestLineBytes};
  ReplyBuffer replies_;
  std::optional<std::string_view> held_;  // a request not yet answered (a view into the framer)
  std::optional<Request> slow_;           // the parsed held_ when it waits for compute()
  ReplyCounts unsent_;                    // replies in replies_
  std::uint64_t requests_ = 0, errors_ = 0;
  bool end_of_stream_ = false;
  bool partial_checked_ = true;  // until something is received
  bool valid_ = false;
  bool given_up_ = false;
  bool closing_ = false;  // the over-long line was refused
};

}  // namespace fib
