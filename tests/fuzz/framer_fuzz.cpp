// Fuzz target over the pure protocol: bytes -> Session (framing, parsing,
// replies) -> bytes, checked against a plain reference splitter and F(n). The same entry point
// serves libFuzzer (FIB_SERVER_FUZZ=ON, clang) and the corpus replay that
// runs in every build (fuzz_replay_main.cpp).
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fib/core/fib.h"
#include "fib/core/line_framer.h"
#include "fib/core/request_handler.h"
#include "fib/core/session.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// What the framer must produce: split on '\n', drop one '\r' before it, skip
// empty lines.
std::vector<std::string> reference_lines(std::string_view input) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t at = input.find('\n'); at != std::string_view::npos; at = input.find('\n', start)) {
    std::string_view line = input.substr(start, at - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) lines.emplace_back(line);
    start = at + 1;
  }
  return lines;
}

void check_reply(std::string_view line, std::string_view reply) {
  check(!reply.empty() && reply.back() == '\n');
  check(reply.find('\n') == reply.size() - 1);  // exactly one line
  check(reply.size() <= fib::ReplyBuffer::kMaxReplyBytes);
  const fib::Request request = fib::parse_request(line, fib::kMaxIndex);
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
  if (size == 0) return 0;
  // The first byte picks how the stream is cut into reads.
  const std::size_t chunk = 1 + data[0] % 97;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const fib::RequestHandler handler(fib::Algorithm::iterative, fib::kMaxIndex);

  // The session, driven as a connection loop drives it, with "more input is
  // waiting" true while the input is not all received.
  fib::Session session(handler);
  std::string output;
  std::size_t offset = 0;
  bool closed = false, too_long = false;
  while (!closed) {
    const std::span<char> space = session.free_space();
    const std::size_t n = std::min({chunk, space.size(), input.size() - offset});
    std::memcpy(space.data(), input.data() + offset, n);
    session.received(n);  // 0 once everything is in: end of stream
    offset += n;
    for (;;) {
      const fib::Session::Next next = session.advance([&] { return offset < input.size(); });
      output += session.output();
      session.sent();
      if (next == fib::Session::Next::compute) {
        check(session.compute());
      } else if (next == fib::Session::Next::close_gracefully) {
        too_long = closed = true;
        break;
      } else if (next == fib::Session::Next::close) {
        closed = true;
        break;
      } else if (next == fib::Session::Next::receive) {
        break;
      }
      check(next != fib::Session::Next::given_up);
    }
    check(n > 0 || closed);  // end of stream always closes
  }

  // Every reply answers the reference's requests in order: the lines, then a
  // last partial line at end of stream; blank ones get none.
  std::vector<std::string> expected = reference_lines(input);
  const std::size_t last_newline = input.rfind('\n');
  const std::string_view rest = input.substr(last_newline == std::string_view::npos ? 0 : last_newline + 1);
  if (!rest.empty()) expected.emplace_back(rest.ends_with('\r') ? rest.substr(0, rest.size() - 1) : rest);
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
    while (line < expected.size() &&
           fib::parse_request(expected[line], fib::kMaxIndex).kind == fib::Request::Kind::blank)
      ++line;
    check(line < expected.size());
    check(expected[line].size() <= fib::LineFramer::kMaxLineBytes);
    check_reply(expected[line], reply);
    ++line;
  }
  check(session.requests() == replies);
  if (!too_long) {
    while (line < expected.size() &&
           fib::parse_request(expected[line], fib::kMaxIndex).kind == fib::Request::Kind::blank)
      ++line;
    check(line == expected.size());  // nothing left unanswered
  }
  return 0;
}
