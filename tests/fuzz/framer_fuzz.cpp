// Fuzz target over the pure request path: bytes -> LineFramer -> parse ->
// reply, checked against a plain reference splitter. The same entry point
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

#include "fib_server/fib.h"
#include "fib_server/line_framer.h"
#include "fib_server/request_handler.h"

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
  const std::vector<std::string> expected = reference_lines(input);

  fib::LineFramer framer;
  std::vector<std::string> got;
  std::size_t offset = 0;
  bool too_long = false;
  while (offset < input.size() && !too_long) {
    const std::span<char> space = framer.free_space();
    check(!space.empty());
    const std::size_t n = std::min({chunk, space.size(), input.size() - offset});
    std::memcpy(space.data(), input.data() + offset, n);
    framer.commit(n);
    offset += n;
    while (const auto line = framer.next_line()) {
      check(line->size() <= fib::LineFramer::kMaxLineBytes);
      fib::ReplyBuffer replies;
      if (handler.reply(*line, replies)) check_reply(*line, replies.view());
      got.emplace_back(*line);
    }
    too_long = framer.line_too_long();
  }
  // Every line completed before the framer gave up is exactly the reference's.
  check(got.size() <= expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) check(got[i] == expected[i]);
  if (!too_long) check(got.size() == expected.size());
  if (!too_long && framer.has_partial()) {
    const std::string_view rest = framer.take_partial();
    fib::ReplyBuffer replies;
    if (handler.reply(rest, replies)) check_reply(rest, replies.view());
  }
  return 0;
}
