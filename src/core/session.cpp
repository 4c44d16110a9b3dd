#include "fib/core/session.h"

#include <cassert>
#include <utility>

namespace fib {

std::span<char> Session::free_space() {
  // The request held for send() or compute() is a view into the framer's
  // buffer, which this may move: call only after advance() said receive.
  assert(!held_ && !slow_);
  return framer_.free_space();
}

void Session::received(std::size_t n) {
  assert(!held_ && !slow_);
  if (n == 0) end_of_stream_ = true;
  framer_.commit(n);
  partial_checked_ = false;
}

std::optional<Session::Next> Session::step() {
  for (;;) {
    if (closing_) return Next::close_gracefully;
    if (given_up_) return Next::given_up;
    if (slow_) return Next::compute;
    if (!held_) held_ = framer_.next_line();
    if (!held_) {
      if (!framer_.line_too_long()) return std::nullopt;
      // The whole buffer holds one unfinished line: refuse it and hang up,
      // since what follows cannot be framed reliably.
      if (replies_.nearly_full()) return Next::send;
      handler_.reply_line_too_long(replies_);
      count_error(ErrorKind::line_too_long);
      closing_ = true;
      continue;
    }
    if (cancel_ != nullptr && cancel_->load(std::memory_order_relaxed)) {
      given_up_ = true;
      continue;
    }
    const Request request = handler_.parse(*held_);
    if (request.kind == Request::Kind::blank) {
      held_.reset();
      continue;
    }
    if (replies_.nearly_full()) return Next::send;
    if (handler_.slow(request)) {
      // Replies waiting go out first, so that the client (or a stop) never
      // waits on them, and the caller may compute elsewhere.
      slow_ = request;
      continue;
    }
    if (!handler_.respond(request, *held_, replies_, &cancel_flag_)) {
      given_up_ = true;  // a fast request gives up too once cancelled
      continue;
    }
    held_.reset();
    if (const std::optional<ErrorKind> error = error_kind(request.kind))
      count_error(*error);
    else
      count_answer();
  }
}

namespace {

// Gives up when either asks to.
class EitherCancel final : public Cancel {
 public:
  EitherCancel(Cancel& first, Cancel* second) : first_(first), second_(second) {}
  bool requested() override { return first_.requested() || (second_ != nullptr && second_->requested()); }

 private:
  Cancel& first_;
  Cancel* second_;
};

}  // namespace

bool Session::compute(Cancel* also) {
  if (!slow_ || !held_) return !given_up_;
  EitherCancel cancel(cancel_flag_, also);
  if (!handler_.respond(*slow_, *held_, replies_, &cancel)) {
    given_up_ = true;
    return false;
  }
  held_.reset();
  slow_.reset();
  count_answer();
  return true;
}

void Session::count_answer() {
  ++unsent_.answers;
  valid_ = true;
}

void Session::count_error(ErrorKind kind) { unsent_.count(kind); }

ReplyCounts Session::sent() {
  requests_ += unsent_.replies();
  errors_ += unsent_.error_lines();
  replies_.clear();
  return std::exchange(unsent_, {});
}

bool Session::at_rest() const {
  return !framer_.has_partial() && replies_.empty() && !held_ && !slow_ && unsent_.replies() == 0 && !end_of_stream_ &&
         !closing_ && !given_up_;
}

void Session::resume(const Rest& rest) {
  assert(at_rest());
  framer_.restart(rest.seen_newline);
  requests_ = rest.requests;
  errors_ = rest.errors;
  valid_ = false;
  partial_checked_ = true;
}

void Session::drop_output() {
  unsent_ = {};
  replies_.clear();
}

}  // namespace fib
