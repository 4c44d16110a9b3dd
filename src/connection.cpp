#include "fib_server/connection.h"

#include <cerrno>

#include "fib_server/line_framer.h"
#include "fib_server/socket.h"

namespace fib {

namespace {

using namespace std::chrono_literals;

// After refusing an over-long line: how long, and how much, to keep reading
// and discarding, so that closing with unread input does not reset the
// connection before the client has read the error line.
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
    case ConnectionResult::End::abandoned: return "server stopping";
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
  const bool idle_limit = policy.idle_timeout.count() > 0;
  Clock::time_point last_request = Clock::now();
  bool answered = false;  // since the last read

  const auto end = [&](End how, int error = 0) {
    result.end = how;
    result.error = error;
    return false;
  };
  const auto flush = [&] {
    if (replies.empty()) return true;
    if (policy.counters != nullptr) policy.counters->sending.store(true, std::memory_order_relaxed);
    const bool sent = send_all(fd, replies.view());
    if (policy.counters != nullptr) policy.counters->sending.store(false, std::memory_order_relaxed);
    if (!sent) {
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
  // Answers one request line; false when the connection should end.
  const auto answer = [&](std::string_view line) {
    if (policy.deadline != nullptr && policy.deadline->passed()) return end(End::abandoned);
    const Request request = handler.parse(line);
    if (request.kind == Request::Kind::blank) return true;
    // Waiting replies go out before a slow request, so that a stop (or the
    // client) never waits on them.
    if ((replies.nearly_full() || handler.slow(request)) && !flush()) return false;
    handler.respond(request, line, replies);
    ++unsent;
    if (request.kind != Request::Kind::number) ++unsent_errors;
    answered = true;
    return true;
  };

  for (;;) {
    const std::span<char> space = framer.free_space();
    const std::ptrdiff_t received = receive_some(fd, space);
    if (received < 0) {
      // A receive timeout (SO_RCVTIMEO) means nothing arrived for the idle timeout.
      if (errno == EAGAIN || errno == EWOULDBLOCK) end(End::idle);
      else end(End::failed, errno);
      flush();
      return result;
    }
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
      end(End::line_too_long);
      if (replies.nearly_full() && !flush()) return result;
      handler.reply_line_too_long(replies);
      ++unsent;
      ++unsent_errors;
      if (flush()) close_gracefully(fd, kDiscardTime, kDiscardBytes);
      return result;
    }
    if (go_on && (end_of_stream ? framer.has_partial()
                                : framer.partial_may_be_request() &&
                                      nothing_more_waiting(fd, static_cast<std::size_t>(received), space.size()))) {
      go_on = answer(framer.take_partial());
    }
    if (!flush() || !go_on || end_of_stream) return result;
    // Bytes that trickle in without ever completing a request do not keep a
    // connection alive (silence alone is caught by the receive timeout).
    if (idle_limit) {
      const Clock::time_point now = Clock::now();
      if (answered) {
        last_request = now;
        answered = false;
      } else if (now - last_request >= policy.idle_timeout) {
        end(End::idle);
        return result;
      }
    }
  }
}

}  // namespace fib
