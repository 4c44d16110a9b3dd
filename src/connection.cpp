#include "fib_server/connection.h"

#include <cerrno>
#include <limits>

#include "fib_server/line_framer.h"
#include "fib_server/socket.h"

namespace fib {

namespace {

using namespace std::chrono_literals;

// After the last line (an over-long line refused, idle, stopping): how
// long, and how much, to keep reading and discarding at most, so that
// closing with unread input does not reset the connection before the client
// has read its replies. A stop lingers until StopState::close_by() instead.
constexpr auto kDiscardTime = 200ms;
constexpr std::size_t kDiscardBytes = 1 << 20;

// Nothing more is on its way for now. A short read means the kernel had no
// more bytes queued, so the common case costs no extra call.
bool nothing_more_waiting(int fd, std::size_t received, std::size_t asked) {
  return received < asked || bytes_waiting(fd) == 0;
}

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
  using Clock = std::chrono::steady_clock;
  using End = ConnectionResult::End;
  ConnectionResult result;
  LineFramer framer;
  ReplyBuffer replies;
  std::uint64_t unsent = 0, unsent_errors = 0;  // replies in `replies`
  const StopState* stop = policy.stop;
  const bool idle_limit = policy.idle_timeout.count() > 0;
  Clock::time_point last_valid = Clock::now();
  bool valid = false;                 // a valid request answered since the last read
  bool receive_timeout_cut = false;   // shortened to what is left of the idle timeout

  const auto end = [&](End how, int error = 0) {
    result.end = how;
    result.error = error;
    return false;
  };
  // Sends the replies waiting; a send blocked for the idle timeout since
  // `started` means the client stopped reading.
  const auto flush = [&](Clock::time_point started) {
    if (replies.empty()) return true;
    if (!send_all(fd, replies.view(), idle_limit ? started + policy.idle_timeout : Clock::time_point::max())) {
      // What could not go out is dropped: the connection ends here, and no
      // later flush may send it again.
      replies.clear();
      // A send timeout (SO_SNDTIMEO) means the client stopped reading.
      return errno == EAGAIN || errno == EWOULDBLOCK ? end(End::stalled) : end(End::failed, errno);
    }
    result.requests += unsent;
    result.errors += unsent_errors;
    unsent = unsent_errors = 0;
    if (policy.counters != nullptr) {
      policy.counters->requests.store(result.requests, std::memory_order_relaxed);
      policy.counters->errors.store(result.errors, std::memory_order_relaxed);
    }
    replies.clear();
    return true;
  };
  // Sends what is answered and a last line saying why the connection ends,
  // then closes our side gracefully. The last line counts as an error reply
  // only when it answers a request (an over-long line).
  const auto say_goodbye = [&](End how, auto&& write_last_line, bool answers_a_request = false) {
    end(how);
    if (replies.nearly_full() && !flush(Clock::now())) return result;
    write_last_line(replies);
    if (answers_a_request) {
      ++unsent;
      ++unsent_errors;
    }
    if (!flush(Clock::now())) return result;
    const Clock::time_point soon = Clock::now() + kDiscardTime;
    const bool stopping = stop != nullptr && stop->stopping();
    if (how == End::stopped) {
      // However much the client still sends: only time bounds a stop.
      close_gracefully(fd, stop->close_by(), std::numeric_limits<std::size_t>::max());
    } else {
      close_gracefully(fd, stopping ? std::min(soon, stop->close_by()) : soon, kDiscardBytes);
    }
    return result;
  };
  const auto say_stopping = [&] { return say_goodbye(End::stopped, RequestHandler::reply_stopping); };
  // Answers one request line; false when the connection should end.
  const auto answer = [&](std::string_view line) {
    if (stop != nullptr && stop->abandoning()) return end(End::stopped);
    const Request request = handler.parse(line);
    if (request.kind == Request::Kind::blank) return true;
    // Waiting replies go out before a slow request, so that a stop (or the
    // client) never waits on them.
    if ((replies.nearly_full() || handler.slow(request)) && !flush(Clock::now())) return false;
    if (!handler.respond(request, line, replies, stop != nullptr ? &stop->abandon_flag() : nullptr))
      return end(End::stopped);
    ++unsent;
    if (request.kind == Request::Kind::number) valid = true;
    else ++unsent_errors;
    return true;
  };

  for (;;) {
    // Requests still on their way are not read once the server stops: the
    // stopping line tells the client they were not answered.
    if (stop != nullptr && stop->stopping()) return say_stopping();
    const std::span<char> space = framer.free_space();
    const std::ptrdiff_t received = receive_some(fd, space, stop != nullptr ? &stop->stopping_flag() : nullptr);
    if (received < 0) {
      if (errno == EINTR) return say_stopping();  // woken by the stop
      // A receive timeout (SO_RCVTIMEO) means no valid request for the idle timeout.
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return say_goodbye(End::idle, [&](ReplyBuffer& out) { RequestHandler::reply_idle(out, policy.idle_timeout); });
      end(End::failed, errno);
      return result;
    }
    // One clock read per receive, for the idle rule and the send that follows.
    const Clock::time_point now = idle_limit ? Clock::now() : Clock::time_point{};
    const bool end_of_stream = received == 0;
    framer.commit(static_cast<std::size_t>(received));

    bool go_on = true;
    while (go_on) {
      const auto line = framer.next_line();
      if (!line) break;
      go_on = answer(*line);
    }
    if (go_on && framer.line_too_long()) {
      // The whole buffer holds one unfinished line: refuse it and hang up,
      // since what follows cannot be framed reliably.
      return say_goodbye(End::line_too_long, [&](ReplyBuffer& out) { handler.reply_line_too_long(out); }, true);
    }
    if (go_on && (end_of_stream ? framer.has_partial()
                                : framer.partial_may_be_request() &&
                                      nothing_more_waiting(fd, static_cast<std::size_t>(received), space.size()))) {
      go_on = answer(framer.take_partial());
    }
    if (!go_on) {
      if (result.end == End::stopped) return say_stopping();  // given up past the shutdown timeout
      return result;                                          // a send failed
    }
    if (!flush(now) || end_of_stream) return result;
    // Idle means no valid request: error replies, and bytes that trickle in
    // without completing a request, do not keep a connection alive. While
    // nothing valid arrives, the receive timeout is what is left of the idle
    // timeout; the common case costs one clock read and no system call.
    if (idle_limit) {
      if (valid) {
        last_valid = now;
        valid = false;
        if (receive_timeout_cut) {
          set_receive_timeout(fd, policy.idle_timeout);
          receive_timeout_cut = false;
        }
      } else {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(policy.idle_timeout - (now - last_valid));
        if (left.count() <= 0)
          return say_goodbye(End::idle,
                             [&](ReplyBuffer& out) { RequestHandler::reply_idle(out, policy.idle_timeout); });
        set_receive_timeout(fd, left);
        receive_timeout_cut = true;
      }
    }
  }
}

}  // namespace fib
