#include "fib_server/connection.h"

#include <cerrno>

#include "fib_server/line_framer.h"
#include "fib_server/socket.h"

namespace fib {

namespace {

// The client has sent all it is going to for now. A short read means the
// kernel had no more bytes queued, so the common case costs no extra call.
bool nothing_more_waiting(int fd, std::size_t received, std::size_t asked) {
  return received < asked ? true : bytes_waiting(fd) == 0;
}

}  // namespace

ConnectionResult serve_connection(int fd, const RequestHandler& handler) {
  ConnectionResult result;
  LineFramer framer;
  ReplyBuffer replies;
  const auto flush = [&] {
    const bool sent = send_all(fd, replies.view());
    if (!sent) result.error = errno;
    replies.clear();
    return sent;
  };
  const auto answer = [&](std::string_view line) {
    if (replies.nearly_full() && !flush()) return false;
    if (handler.reply(line, replies)) ++result.requests;
    return true;
  };

  for (;;) {
    const std::span<char> space = framer.free_space();
    const std::ptrdiff_t received = receive_some(fd, space);
    if (received < 0) {
      result.error = errno;
      return result;
    }
    const bool end_of_stream = received == 0;
    framer.commit(static_cast<std::size_t>(received));

    while (const auto line = framer.next_line()) {
      if (!answer(*line)) return result;
    }
    if (framer.line_too_long()) {
      // The whole buffer holds one unfinished line: refuse it and hang up,
      // since what follows cannot be framed reliably.
      result.line_too_long = true;
      if (replies.nearly_full() && !flush()) return result;
      handler.reply_line_too_long(replies);
      ++result.requests;
      flush();
      return result;
    }
    // Clients in the seed's style send "30" with no newline, one send per
    // request: bytes left over with nothing more on the way are a request.
    if (framer.has_partial() &&
        (end_of_stream || nothing_more_waiting(fd, static_cast<std::size_t>(received), space.size()))) {
      if (!answer(framer.take_partial())) return result;
    }
    if (!replies.empty() && !flush()) return result;
    if (end_of_stream) return result;
  }
}

}  // namespace fib
