// What a load connection makes of the server's answers: each matched to
// its request, checked and timed; silences; lost connections.
#include <algorithm>
#include <chrono>
#include <mutex>

#include "client_connection.h"
#include "fib/core/request_handler.h"

namespace fib {

namespace {

// Silences kept per connection; past these, the last one is stretched to
// cover the rest (a server that hangs up on every request).
constexpr std::size_t kKeptSilences = 1000;

}  // namespace

bool ClientConnection::take_answers(Clock::time_point now) {
  bool framing_lost = false, server_stopping = false, replied = false;
  {
    std::lock_guard lock(mutex_);
    while (const auto line = framer_.next_line()) {
      if (*line == kStoppingLine) {  // the server's last line: what is in flight is not answered
        server_stopping = true;
        break;
      }
      replied = true;
      if (in_flight_.empty()) {  // an answer nobody asked for
        unexpected(*line);
        continue;
      }
      const InFlight::Request request = in_flight_.pop();
      // Every answer is checked, warm-up included; only measured ones are timed.
      if (*line != run_.expected) {
        unexpected(*line);
      } else if (now - request.sent > run_.config.timeout) {
        if (measured(request.due)) ++stats_.errors.timeout;  // right, but too late
      } else if (measured(request.due)) {
        ++stats_.requests;
        stats_.latency.record(to_ns(now - request.due));
        if (stats_.uncorrected) stats_.uncorrected->record(to_ns(now - request.sent));
      }
    }
    if (framer_.line_too_long()) {
      ++stats_.errors.wrong_answer;
      framing_lost = true;
    }
  }
  if (replied) replied_at(now);
  if (framing_lost) lose_connection(&ErrorCounts::wrong_answer);
  if (server_stopping) lose_connection(&ErrorCounts::reset_or_eof);
  return !framing_lost && !server_stopping;
}

// The server answered: a silence since a lost connection ends here.
void ClientConnection::replied_at(Clock::time_point now) {
  if (lost_since_reply_) {
    if (silences_.size() < kKeptSilences) {
      silences_.push_back({last_reply_, now});
    } else {
      silences_.back().end = now;
    }
    lost_since_reply_ = false;
  }
  last_reply_ = now;
  replied_ = true;
}

// False (and the connection dropped) if the oldest request is overdue.
// Under --requests, a connection that timed out gives up the rest of its
// quota, so a stalled server costs one timeout, not one per request.
bool ClientConnection::check_timeout(Clock::time_point now) {
  if (in_flight_.empty() || now - in_flight_[0].sent <= run_.config.timeout) return true;
  lose_connection(&ErrorCounts::timeout);
  if (quota_) gave_up_ = true;
  return false;
}

std::uint64_t ClientConnection::measured_in_flight() const {
  std::uint64_t count = 0;
  for (std::size_t i = 0; i < in_flight_.size(); ++i)
    if (measured(in_flight_[i].due)) ++count;
  return count;
}

// Every request in flight is lost (counted as `kind`); the next loop
// reconnects. Answers to them could no longer be matched to requests.
void ClientConnection::lose_connection(std::uint64_t ErrorCounts::*kind) {
  {
    std::lock_guard lock(mutex_);
    stats_.errors.*kind += measured_in_flight();
  }
  // Requests left unanswered mean the server stopped answering (unless the
  // client dropped it for a reply too long). A connection closed with
  // nothing in flight (an idle one) was not failed: it reconnects.
  if (kind != &ErrorCounts::wrong_answer && !in_flight_.empty()) lost_since_reply_ = true;
  in_flight_.clear();
  framer_ = LineFramer{kMaxReplyLineBytes};
  fd_.reset();
}

}  // namespace fib
