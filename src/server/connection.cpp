#include "fib/server/connection.h"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <optional>

#include "fib/core/clock.h"
#include "fib/core/session.h"
#include "fib/net/socket.h"
#include "fib/server/compute_gate.h"
#include "priority.h"

namespace fib {

namespace {

using namespace std::chrono_literals;

// After the last line (an over-long line refused, idle, stopping): how
// long, and how much, to keep reading and discarding at most, so that
// closing with unread input does not reset the connection before the client
// has read its replies. A stop lingers until StopState::close_by() instead.
constexpr auto kDiscardTime = 200ms;
constexpr std::size_t kDiscardBytes = 1 << 20;

}  // namespace

std::string_view to_string(ConnectionResult::End end) {
  switch (end) {
    case ConnectionResult::End::closed: return "closed by the client";
    case ConnectionResult::End::failed: return "failed";
    case ConnectionResult::End::line_too_long: return "line too long";
    case ConnectionResult::End::idle: return "idle timeout";
    case ConnectionResult::End::stalled: return "send timeout: the client stopped reading";
    case ConnectionResult::End::stopped: return "server stopping";
  }
  return "?";
}

void ConnectionCounters::count(const ReplyCounts& sent, Clock::duration service) {
  add(answers, static_cast<std::int64_t>(sent.answers));
  for (std::size_t i = 0; i < kErrorKinds; ++i) {
    if (sent.errors[i] != 0) add(errors[i], static_cast<std::int64_t>(sent.errors[i]));
  }
  const std::uint64_t replies = sent.replies();
  add(service_times[service_time_bucket(service)], static_cast<std::int64_t>(replies));
  add(service_time_ns,
      static_cast<std::int64_t>(replies) * std::chrono::duration_cast<std::chrono::nanoseconds>(service).count());
}

void ConnectionCounters::add_to(ReplyCounts& replies, ServiceTimes& times) const {
  replies.answers += answers.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kErrorKinds; ++i) replies.errors[i] += errors[i].load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kServiceTimeBuckets; ++i)
    times.buckets[i] += service_times[i].load(std::memory_order_relaxed);
  times.sum_ns += service_time_ns.load(std::memory_order_relaxed);
}

namespace {

// How often a computation looks at its client's socket.
constexpr auto kPeerCheckEvery = 10ms;

// Asks a computation to give up once the server abandons requests (a stop
// past its timeout) or the client has reset the connection.
class PeerWatch final : public Cancel {
 public:
  PeerWatch(int fd, const StopState* stop) : fd_(fd), abandon_(stop != nullptr ? &stop->abandon_flag() : nullptr) {}
  bool requested() override {
    if (abandon_ != nullptr && abandon_->load(std::memory_order_relaxed)) return true;
    if (gone_) return true;
    const Clock::time_point now = Clock::now();  // a few tens of nanoseconds, every fraction of a millisecond
    if (now < next_check_) return false;
    next_check_ = now + kPeerCheckEvery;
    gone_ = peer_reset(fd_);
    return gone_;
  }
  bool peer_gone() const { return gone_; }

 private:
  const int fd_;
  const std::atomic<bool>* const abandon_;
  bool gone_ = false;
  Clock::time_point next_check_{};  // the first question looks
};

}  // namespace

Computed compute_slow(Session& session, int fd, const ConnectionPolicy& policy) {
  PeerWatch watch(fd, policy.stop);
  if (!watch.requested()) {
    const ComputeGate::Turn turn = policy.gate != nullptr ? policy.gate->enter(watch) : ComputeGate::Turn();
    if (session.compute(&watch)) return Computed::answered;  // gives up at once if the wait was cancelled
  } else if (!watch.peer_gone()) {
    session.compute(&watch);  // the stop's give-up, recorded in the session
  }
  return watch.peer_gone() ? Computed::client_gone : Computed::given_up;
}

CloseLimits goodbye_close_limits(ConnectionResult::End how, const StopState* stop) {
  // However much the client still sends: only time bounds a stop.
  if (how == ConnectionResult::End::stopped) return {stop->close_by(), std::numeric_limits<std::size_t>::max()};
  const Clock::time_point soon = Clock::now() + kDiscardTime;
  return {stop != nullptr && stop->stopping() ? std::min(soon, stop->close_by()) : soon, kDiscardBytes};
}

namespace {

// One connection's receive / send loop over its session, and how it ends.
class ConnectionLoop {
 public:
  using End = ConnectionResult::End;
  using Next = Session::Next;

  ConnectionLoop(int fd, const RequestHandler& handler, const ConnectionPolicy& policy)
      : fd_(fd),
        policy_(policy),
        stop_(policy.stop),
        session_(handler, stop_ != nullptr ? &stop_->abandon_flag() : nullptr),
        idle_limit_(policy.idle_timeout.count() > 0) {}

  ConnectionResult run() {
    for (;;) {
      // Requests still on their way are not read once the server stops: the
      // stopping line tells the client they were not answered.
      if (stop_ != nullptr && stop_->stopping()) return say_stopping();
      const std::span<char> space = session_.free_space();
      const std::ptrdiff_t received = receive_some(fd_, space, stop_ != nullptr ? &stop_->stopping_flag() : nullptr);
      if (received < 0) {
        if (errno == EINTR) return say_stopping();  // woken by the stop
        // A receive timeout (SO_RCVTIMEO) means no valid request for the idle timeout.
        if (errno == EAGAIN || errno == EWOULDBLOCK) return say_idle();
        end(End::failed, errno);
        return result_;
      }
      // One clock read per receive, for the idle rule, the send that follows
      // and the service time of the requests it completes.
      const Clock::time_point now = Clock::now();
      received_at_ = now;
      session_.received(static_cast<std::size_t>(received));
      // A short read means the kernel had no more bytes queued, so the common
      // case costs no extra call. (With today's buffer sizes a full read
      // always leaves more than an unterminated request may hold, so the
      // session never asks then; the check keeps the rule right if they change.)
      const auto more_waiting = [&] {
        return static_cast<std::size_t>(received) == space.size() && bytes_waiting(fd_) > 0;
      };
      for (Next next = session_.advance(more_waiting); next != Next::receive; next = session_.advance(more_waiting)) {
        if (const std::optional<ConnectionResult> ended = act_on(next, now)) return *ended;
      }
      if (!flush(now)) return result_;
      if (idle_limit_ && !keep_idle_clock(now)) return say_idle();
    }
  }

 private:
  // Does what the session asks; the result once the connection has ended.
  std::optional<ConnectionResult> act_on(Next next, Clock::time_point received_at) {
    switch (next) {
      case Next::receive: return std::nullopt;
      case Next::send:
        if (!flush(Clock::now())) return result_;
        return std::nullopt;
      case Next::compute:
        if (!flush(Clock::now())) return result_;
        if (compute_here() == Computed::client_gone) {
          end(End::failed, ECONNRESET);
          return result_;
        }
        return std::nullopt;  // a give-up shows in the next advance()
      case Next::close_gracefully: return say_goodbye(End::line_too_long, [] {});
      case Next::close:
        end(End::closed);
        flush(received_at);
        return result_;
      case Next::given_up: return say_stopping();
    }
    return std::nullopt;
  }

  void end(End how, int error = 0) {
    result_.end = how;
    result_.error = error;
  }

  // On this connection's own thread, at the lower priority of slow requests
  // while it computes (the coroutine mode's workers run there always).
  Computed compute_here() {
    lower_priority();
    const Computed computed = compute_slow(session_, fd_, policy_);
    restore_priority();
    return computed;
  }

  // Sends the session's replies; a send blocked for the idle timeout since
  // `started` means the client stopped reading. False when the connection ends.
  bool flush(Clock::time_point started) {
    if (session_.output().empty()) return true;
    if (!send_all(fd_, session_.output(), idle_limit_ ? started + policy_.idle_timeout : Clock::time_point::max())) {
      session_.drop_output();
      // A send timeout (SO_SNDTIMEO) means the client stopped reading.
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        end(End::stalled);
      else
        end(End::failed, errno);
      return false;
    }
    const ReplyCounts sent = session_.sent();
    result_.requests = session_.requests();
    result_.errors = session_.errors();
    if (policy_.counters != nullptr) policy_.counters->count(sent, Clock::now() - received_at_);
    return true;
  }

  // Sends what is answered, then (after `say`) a last line saying why the
  // connection ends, then closes our side gracefully.
  template <typename Say>
  ConnectionResult say_goodbye(End how, Say&& say) {
    end(how);
    if (!session_.room_for_last_line() && !flush(Clock::now())) return result_;
    say();
    if (!flush(Clock::now())) return result_;
    const CloseLimits limits = goodbye_close_limits(how, stop_);
    close_gracefully(fd_, limits.until, limits.max_bytes);
    return result_;
  }
  ConnectionResult say_stopping() {
    return say_goodbye(End::stopped, [this] { session_.say_stopping(); });
  }
  ConnectionResult say_idle() {
    return say_goodbye(End::idle, [this] { session_.say_idle(policy_.idle_timeout); });
  }

  // Idle means no valid request: error replies, and bytes that trickle in
  // without completing a request, do not keep a connection alive. While
  // nothing valid arrives, the receive timeout is what is left of the idle
  // timeout; the common case costs no system call. False once idle.
  bool keep_idle_clock(Clock::time_point now) {
    if (session_.take_valid_request()) {
      last_valid_ = now;
      if (receive_timeout_cut_) {
        set_receive_timeout(fd_, policy_.idle_timeout);
        receive_timeout_cut_ = false;
      }
      return true;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(policy_.idle_timeout - (now - last_valid_));
    if (left.count() <= 0) return false;
    set_receive_timeout(fd_, left);
    receive_timeout_cut_ = true;
    return true;
  }

  const int fd_;
  const ConnectionPolicy& policy_;
  const StopState* const stop_;
  Session session_;
  const bool idle_limit_;
  ConnectionResult result_;
  Clock::time_point last_valid_ = Clock::now();
  Clock::time_point received_at_;     // the last receive: what every reply sent since answers arrived then
  bool receive_timeout_cut_ = false;  // shortened to what is left of the idle timeout
};

}  // namespace

ConnectionResult serve_connection(int fd, const RequestHandler& handler, const ConnectionPolicy& policy) {
  return ConnectionLoop(fd, handler, policy).run();
}

}  // namespace fib
