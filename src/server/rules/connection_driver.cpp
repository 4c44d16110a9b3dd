#include "connection_driver.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace fib {

namespace {

using namespace std::chrono_literals;

// After a last line (an over-long line refused, idle): how long, and how
// much, to keep reading and discarding at most, so that closing with unread
// input does not reset the connection before the client has read its
// replies. A stop lingers until StopState::close_by() instead.
constexpr auto kDiscardTime = 200ms;
constexpr std::size_t kDiscardBytes = 1 << 20;

CloseLimits close_limits(End how, const StopState& stop) {
  // However much the client still sends: only time bounds a stop.
  if (how == End::stopped) return {stop.close_by(), std::numeric_limits<std::size_t>::max()};
  const Clock::time_point soon = Clock::now() + kDiscardTime;
  return {stop.stopping() ? std::min(soon, stop.close_by()) : soon, kDiscardBytes};
}

}  // namespace

std::unique_ptr<Session> SpareSessions::take() {
  if (spares_.empty()) return std::make_unique<Session>(handler_, &stop_.abandon_flag());
  std::unique_ptr<Session> session = std::move(spares_.back());
  spares_.pop_back();
  return session;
}

void SpareSessions::give_back(std::unique_ptr<Session> session) {
  if (spares_.size() < kMaxSpares) spares_.push_back(std::move(session));
}

ConnectionDriver::ConnectionDriver(const ConnectionRules& rules, ConnectionCounters& counters, Session& session)
    : rules_(rules), counters_(counters), spares_(nullptr), session_(&session) {}

ConnectionDriver::ConnectionDriver(const ConnectionRules& rules, ConnectionCounters& counters, SpareSessions& spares)
    : rules_(rules), counters_(counters), spares_(&spares) {}

ConnectionDriver::~ConnectionDriver() {
  if (lent_ && lent_->at_rest()) spares_->give_back(std::move(lent_));
}

Session& ConnectionDriver::session() {
  if (session_ == nullptr) {
    lent_ = spares_->take();
    lent_->resume(rest_);
    session_ = lent_.get();
  }
  return *session_;
}

ConnectionDriver::Step ConnectionDriver::next() {
  for (;;) {
    switch (state_) {
      case State::receive:
        // Requests still on their way are not read once the server stops:
        // the stopping line tells the client they were not answered.
        if (rules_.stop->stopping()) {
          goodbye(End::stopped);
          break;
        }
        return {.what = Do::receive,
                .deadline = idle_deadline(),
                .space = session_ ? session_->free_space() : std::span<char>(arrived_)};
      case State::answer: answer(); break;
      case State::flush:
        if (session_ == nullptr || session_->output().empty()) {
          state_ = after_send_;
          break;
        }
        state_ = State::sending;
        [[fallthrough]];
      case State::sending:
        return {.what = Do::send, .deadline = rules_.idle.deadline(send_from_), .bytes = session_->output()};
      case State::compute: return {.what = Do::compute, .session = &session()};
      case State::round_end: round_end(); break;
      case State::say_last_line:
        if (result_.end == End::stopped) session().say_stopping();
        if (result_.end == End::idle) session().say_idle(rules_.idle.timeout);
        flush(State::close, Clock::now());
        break;
      case State::close:
        state_ = State::done;
        return {.what = Do::close, .limits = close_limits(result_.end, *rules_.stop)};
      case State::done: return {.what = Do::done};
    }
  }
}

// Answers what was received, fast requests inline, until there is something
// to send, compute or end.
void ConnectionDriver::answer() {
  using Next = Session::Next;
  switch (session().advance([this] { return more_waiting_; })) {
    case Next::receive: flush(State::round_end, received_at_); break;
    case Next::send: flush(State::answer, Clock::now()); break;
    case Next::compute: flush(State::compute, Clock::now()); break;
    case Next::close_gracefully: goodbye(End::line_too_long); break;
    case Next::close:
      end(End::closed);
      flush(State::done, received_at_);
      break;
    case Next::given_up: goodbye(End::stopped); break;
  }
}

// Everything received is answered and sent: the idle rule, then the next
// receive, at rest with spares when nothing is pending.
void ConnectionDriver::round_end() {
  state_ = State::receive;
  Session& session = this->session();
  // Idle means no valid request: error replies, and bytes that trickle in
  // without completing a request, do not keep a connection alive. The idle
  // clock starts again when a valid request's answer has gone out.
  if (session.take_valid_request()) {
    last_valid_ = std::max(sent_at_, received_at_);
  } else if (rules_.idle.on() && received_at_ >= idle_deadline()) {
    goodbye(End::idle);
    return;
  }
  if (lent_ && session.at_rest()) {
    rest_ = session.rest();
    spares_->give_back(std::move(lent_));
    session_ = nullptr;
  }
}

// Sends output(), if any, then goes on to `then`; a send blocked for the
// idle timeout since `started` means the client stopped reading.
void ConnectionDriver::flush(State then, Clock::time_point started) {
  state_ = State::flush;
  after_send_ = then;
  send_from_ = started;
}

// Sends what is answered, then a last line saying why the connection ends
// (none for a line too long: its error line is already there), then closes
// gracefully.
void ConnectionDriver::goodbye(End how) {
  end(how);
  if (session().room_for_last_line())
    state_ = State::say_last_line;
  else
    flush(State::say_last_line, Clock::now());
}

void ConnectionDriver::end(End how, int error) {
  result_.end = how;
  result_.error = error;
}

void ConnectionDriver::received(std::size_t n, bool more_waiting, Clock::time_point now) {
  received_at_ = now;
  more_waiting_ = more_waiting;
  const bool resting = session_ == nullptr;
  Session& session = this->session();
  if (resting && n > 0) std::memcpy(session.free_space().data(), arrived_.data(), n);
  session.received(n);
  state_ = State::answer;
}

void ConnectionDriver::sent() {
  Session& session = *session_;
  const ReplyCounts counts = session.sent();
  result_.replies = session.requests();
  result_.errors = session.errors();
  sent_at_ = Clock::now();
  counters_.count(counts, sent_at_ - received_at_);
  state_ = after_send_;
}

void ConnectionDriver::computed(Computed how) {
  if (how == Computed::client_gone) {
    end(End::failed, ECONNRESET);
    state_ = State::done;
    return;
  }
  state_ = State::answer;  // a give-up shows in the next advance()
}

void ConnectionDriver::receive_cut(Cut why, int error) {
  switch (why) {
    case Cut::deadline: goodbye(End::idle); break;
    case Cut::stopping: goodbye(End::stopped); break;
    case Cut::error:
      end(End::failed, error);
      state_ = State::done;
      break;
  }
}

void ConnectionDriver::send_cut(Cut why, int error) {
  session_->drop_output();
  if (why == Cut::error)
    end(End::failed, error);
  else
    end(End::stalled);  // the client stopped reading (a stop's grace past its timeout counts so too)
  state_ = State::done;
}

}  // namespace fib
