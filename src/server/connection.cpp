#include "fib/server/connection.h"
#include "fib/core/clock.h"

#include <algorithm>
#include <cerrno>
#include <limits>

#include "fib/core/session.h"
#include "fib/net/socket.h"

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

ConnectionResult serve_connection(int fd, const RequestHandler& handler, const ConnectionPolicy& policy) {
  using End = ConnectionResult::End;
  using Next = Session::Next;
  const StopState* stop = policy.stop;
  Session session(handler, stop != nullptr ? &stop->abandon_flag() : nullptr);
  ConnectionResult result;
  const bool idle_limit = policy.idle_timeout.count() > 0;
  Clock::time_point last_valid = Clock::now();
  bool receive_timeout_cut = false;  // shortened to what is left of the idle timeout

  const auto end = [&](End how, int error = 0) {
    result.end = how;
    result.error = error;
  };
  // Sends the session's replies; a send blocked for the idle timeout since
  // `started` means the client stopped reading. False when the connection ends.
  const auto flush = [&](Clock::time_point started) {
    if (session.output().empty()) return true;
    if (!send_all(fd, session.output(), idle_limit ? started + policy.idle_timeout : Clock::time_point::max())) {
      session.drop_output();
      // A send timeout (SO_SNDTIMEO) means the client stopped reading.
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        end(End::stalled);
      else
        end(End::failed, errno);
      return false;
    }
    session.sent();
    result.requests = session.requests();
    result.errors = session.errors();
    if (policy.counters != nullptr) {
      policy.counters->requests.store(result.requests, std::memory_order_relaxed);
      policy.counters->errors.store(result.errors, std::memory_order_relaxed);
    }
    return true;
  };
  // Sends what is answered, then (after `say`, if any) a last line saying
  // why the connection ends, then closes our side gracefully.
  const auto say_goodbye = [&](End how, auto&& say) {
    end(how);
    if (!session.room_for_last_line() && !flush(Clock::now())) return result;
    say();
    if (!flush(Clock::now())) return result;
    if (how == End::stopped) {
      // However much the client still sends: only time bounds a stop.
      close_gracefully(fd, stop->close_by(), std::numeric_limits<std::size_t>::max());
    } else {
      const Clock::time_point soon = Clock::now() + kDiscardTime;
      close_gracefully(fd, stop != nullptr && stop->stopping() ? std::min(soon, stop->close_by()) : soon,
                       kDiscardBytes);
    }
    return result;
  };
  const auto say_stopping = [&] { return say_goodbye(End::stopped, [&] { session.say_stopping(); }); };
  const auto say_idle = [&] { return say_goodbye(End::idle, [&] { session.say_idle(policy.idle_timeout); }); };

  for (;;) {
    // Requests still on their way are not read once the server stops: the
    // stopping line tells the client they were not answered.
    if (stop != nullptr && stop->stopping()) return say_stopping();
    const std::span<char> space = session.free_space();
    const std::ptrdiff_t received = receive_some(fd, space, stop != nullptr ? &stop->stopping_flag() : nullptr);
    if (received < 0) {
      if (errno == EINTR) return say_stopping();  // woken by the stop
      // A receive timeout (SO_RCVTIMEO) means no valid request for the idle timeout.
      if (errno == EAGAIN || errno == EWOULDBLOCK) return say_idle();
      end(End::failed, errno);
      return result;
    }
    // One clock read per receive, for the idle rule and the send that follows.
    const Clock::time_point now = idle_limit ? Clock::now() : Clock::time_point{};
    session.received(static_cast<std::size_t>(received));
    // A short read means the kernel had no more bytes queued, so the common
    // case costs no extra call.
    const auto more_waiting = [&] {
      return static_cast<std::size_t>(received) == space.size() && bytes_waiting(fd) > 0;
    };
    for (Next next = session.advance(more_waiting); next != Next::receive; next = session.advance(more_waiting)) {
      switch (next) {
        case Next::receive: break;
        case Next::send:
          if (!flush(Clock::now())) return result;
          break;
        case Next::compute:
          if (!flush(Clock::now())) return result;
          session.compute();  // a give-up shows in the next advance()
          break;
        case Next::close_gracefully: return say_goodbye(End::line_too_long, [] {});
        case Next::close:
          end(End::closed);
          flush(now);
          return result;
        case Next::given_up: return say_stopping();
      }
    }
    if (!flush(now)) return result;
    // Idle means no valid request: error replies, and bytes that trickle in
    // without completing a request, do not keep a connection alive. While
    // nothing valid arrives, the receive timeout is what is left of the idle
    // timeout; the common case costs one clock read and no system call.
    if (!idle_limit) continue;
    if (session.take_valid_request()) {
      last_valid = now;
      if (receive_timeout_cut) {
        set_receive_timeout(fd, policy.idle_timeout);
        receive_timeout_cut = false;
      }
    } else {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(policy.idle_timeout - (now - last_valid));
      if (left.count() <= 0) return say_idle();
      set_receive_timeout(fd, left);
      receive_timeout_cut = true;
    }
  }
}

}  // namespace fib
