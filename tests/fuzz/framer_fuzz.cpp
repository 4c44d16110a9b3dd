// Fuzz target over the pure protocol: bytes -> Session (framing, parsing,
// replies) -> bytes, checked against a plain reference splitter and F(n). The same entry point
// serves libFuzzer (FIB_SERVER_FUZZ=ON, clang) and the corpus replay that
// runs in every build (fuzz_replay_main.cpp).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fib/core/fib.h"
#include "fib/core/line_framer.h"
#include "fib/core/request_handler.h"
#include "fib/core/session.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// The requests a client sent, by the protocol's rules, given how the input
// was cut into reads: lines split on '\n' (one '\r' before it dropped,
// empty ones skipped); while no newline has been seen, what a read ends
// with is one request if it is short and nothing more is waiting (`eager`);
// at end of stream, a partial line is a last request.
std::vector<std::string> reference_requests(std::string_view input, const std::vector<std::size_t>& reads, bool eager) {
  const auto drop_cr = [](std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  };
  std::vector<std::string> requests;
  std::string partial;
  bool seen_newline = false;
  std::size_t at = 0;
  for (const std::size_t n : reads) {
    for (const char c : input.substr(at, n)) {
      if (c != '\n') {
        partial += c;
        continue;
      }
      seen_newline = true;
      if (std::string line = drop_cr(std::exchange(partial, {})); !line.empty()) requests.push_back(std::move(line));
    }
    at += n;
    if (eager && !seen_newline && !partial.empty() && partial.size() <= fib::kMaxUnterminatedRequestBytes)
      requests.push_back(drop_cr(std::exchange(partial, {})));
  }
  if (!partial.empty()) requests.push_back(drop_cr(partial));
  return requests;
}

void check_reply(std::string_view line, std::string_view reply, unsigned max_n) {
  check(!reply.empty() && reply.back() == '\n');
  check(reply.find('\n') == reply.size() - 1);  // exactly one line
  check(reply.size() <= fib::ReplyBuffer::kMaxReplyBytes);
  const fib::Request request = fib::parse_request(line, max_n);
  if (request.kind == fib::Request::Kind::number) {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(reply.data(), reply.data() + reply.size() - 1, value);
    check(ec == std::errc{} && end == reply.data() + reply.size() - 1);
    check(value == fib::fib_iterative(static_cast<unsigned>(request.n)));
  } else {
    check(reply.starts_with("error: "));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first byte picks how the stream is cut into reads; the second: the
  // algorithm (recursive requests from 30 up are slow: compute() runs), whether
  // a read is all that is waiting (the unterminated-request rule applies after
  // every read), and whether the server gives up after the first read.
  const std::size_t chunk = 1 + data[0] % 97;
  const bool recursive = (data[1] & 1) != 0, eager = (data[1] & 2) != 0, cancel_early = (data[1] & 4) != 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  const unsigned max_n = recursive ? 30 : fib::kMaxIndex;  // fib(30) is slow enough, and quick
  const fib::RequestHandler handler(recursive ? fib::Algorithm::recursive : fib::Algorithm::iterative, max_n);

  // The session, driven as a connection loop drives it.
  std::atomic<bool> cancel{false};
  fib::Session session(handler, &cancel);
  std::string output;
  std::vector<std::size_t> reads;
  std::size_t offset = 0;
  bool closed = false, too_long = false, given_up = false;
  while (!closed) {
    const std::span<char> space = session.free_space();
    const std::size_t n = std::min({chunk, space.size(), input.size() - offset});
    std::memcpy(space.data(), input.data() + offset, n);
    session.received(n);  // 0 once everything is in: end of stream
    offset += n;
    if (n > 0) reads.push_back(n);
    for (;;) {
      const fib::Session::Next next = session.advance([&] { return !eager && offset < input.size(); });
      output += session.output();
      session.sent();
      if (next == fib::Session::Next::compute) {
        check(session.compute() || cancel);
      } else if (next == fib::Session::Next::close_gracefully) {
        too_long = closed = true;
        break;
      } else if (next == fib::Session::Next::close) {
        closed = true;
        break;
      } else if (next == fib::Session::Next::given_up) {
        check(cancel);
        given_up = closed = true;
        break;
      } else if (next == fib::Session::Next::receive) {
        break;
      }
    }
    check(n > 0 || closed);  // end of stream always closes
    if (cancel_early) cancel = true;
  }

  // Every reply answers the reference's requests in order; blank ones get none.
  const std::vector<std::string> expected = reference_requests(input, reads, eager);
  const auto blank = [&](std::size_t i) {
    return fib::parse_request(expected[i], max_n).kind == fib::Request::Kind::blank;
  };
  std::size_t line = 0, replies = 0;
  for (std::size_t start = 0; start < output.size();) {
    const std::size_t end = output.find('\n', start);
    check(end != std::string::npos);
    const std::string_view reply(output.data() + start, end + 1 - start);
    start = end + 1;
    ++replies;
    if (too_long && start == output.size()) {
      check(reply.starts_with("error: line longer than"));
      break;
    }
    while (line < expected.size() && blank(line)) ++line;
    check(line < expected.size());
    check(expected[line].size() <= fib::kMaxRequestLineBytes);
    check_reply(expected[line], reply, max_n);
    ++line;
  }
  check(session.requests() == replies);
  if (!too_long && !given_up) {
    while (line < expected.size() && blank(line)) ++line;
    check(line == expected.size());  // nothing left unanswered
  }
  return 0;
}
