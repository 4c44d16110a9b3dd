#include "fib/core/request_handler.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "fib/core/line_framer.h"

namespace fib {

namespace {

constexpr std::size_t kQuotedBytes = 20;  // how much of a bad request an error quotes

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Formats into the buffer's free space; the caller guarantees room for
// kMaxReplyBytes, and format_to_n truncates rather than overflow.
template <typename... Args>
void append_format(ReplyBuffer& out, fmt::format_string<Args...> format, Args&&... args) {
  const std::span<char> space = out.space();
  const auto result = fmt::format_to_n(space.data(), std::min(space.size(), ReplyBuffer::kMaxReplyBytes), format,
                                       std::forward<Args>(args)...);
  out.commit(std::min<std::size_t>(result.size, std::min(space.size(), ReplyBuffer::kMaxReplyBytes)));
}

// The offending request, quoted and escaped, cut short if long.
struct Quoted {
  std::string_view text;
};

}  // namespace

}  // namespace fib

template <>
struct fmt::formatter<fib::Quoted> : fmt::formatter<std::string_view> {
  auto format(const fib::Quoted& q, format_context& ctx) const -> decltype(ctx.out()) {
    const bool cut = q.text.size() > fib::kQuotedBytes;
    return fmt::format_to(ctx.out(), "{:?}{}", q.text.substr(0, fib::kQuotedBytes), cut ? "..." : "");
  }
};

namespace fib {

Request parse_request(std::string_view line, unsigned max_n) {
  const std::string_view s = trim(line);
  if (s.empty()) return {Request::Kind::blank};
  if (s.front() == '-' && all_digits(s.substr(1)) && s.find_first_not_of('0', 1) != std::string_view::npos)
    return {Request::Kind::negative};
  if (!all_digits(s)) return {Request::Kind::not_a_number};
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec == std::errc::result_out_of_range || n > max_n) return {Request::Kind::too_large, n};
  return {Request::Kind::number, n};
}

std::optional<ErrorKind> error_kind(Request::Kind kind) {
  switch (kind) {
    case Request::Kind::number:
    case Request::Kind::blank: return std::nullopt;
    case Request::Kind::not_a_number: return ErrorKind::not_a_number;
    case Request::Kind::negative: return ErrorKind::negative;
    case Request::Kind::too_large: return ErrorKind::too_large;
  }
  return ErrorKind::not_a_number;
}

RequestHandler::RequestHandler(Algorithm algorithm, unsigned max_n)
    : algorithm_(algorithm), max_n_(std::min(max_n, kMaxIndex)) {}

bool RequestHandler::slow(const Request& request) const {
  return algorithm_ == Algorithm::recursive && request.kind == Request::Kind::number && request.n >= kSlowRecursiveN;
}

bool RequestHandler::reply(std::string_view line, ReplyBuffer& out) const {
  const Request request = parse(line);
  respond(request, line, out);
  return request.kind != Request::Kind::blank;
}

bool RequestHandler::respond(const Request& request, std::string_view line, ReplyBuffer& out, Cancel* cancel) const {
  const Quoted quoted{trim(line)};
  switch (request.kind) {
    case Request::Kind::blank: return true;
    case Request::Kind::number: {
      const std::optional<std::uint64_t> value = fib(algorithm_, static_cast<unsigned>(request.n), cancel);
      if (!value) return false;
      const std::span<char> space = out.space();
      const auto [end, ec] = std::to_chars(space.data(), space.data() + space.size(), *value);
      *end = '\n';
      out.commit(end + 1 - space.data());
      return true;
    }
    case Request::Kind::not_a_number:
      append_format(out, "error: {} is not a number; send one whole number from 0 to {} per line\n", quoted, max_n_);
      return true;
    case Request::Kind::negative:
      append_format(out, "error: {} is negative; send one whole number from 0 to {} per line\n", quoted, max_n_);
      return true;
    case Request::Kind::too_large:
      append_format(out, "error: {} is too large; the largest n this server accepts is {}\n", quoted, max_n_);
      return true;
  }
  return true;
}

void RequestHandler::reply_line_too_long(ReplyBuffer& out) const {
  append_format(out, "error: line longer than {} bytes; send one whole number from 0 to {} per line\n",
                kMaxRequestLineBytes, max_n_);
}

void RequestHandler::reply_stopping(ReplyBuffer& out) {
  const std::span<char> space = out.space();
  const std::size_t n = std::min(space.size(), kStoppingReply.size());
  std::copy_n(kStoppingReply.data(), n, space.data());
  out.commit(n);
}

void RequestHandler::reply_idle(ReplyBuffer& out, std::chrono::milliseconds idle_timeout) {
  append_format(out, "error: idle timeout: no valid request for {:g} s; closing the connection\n",
                static_cast<double>(idle_timeout.count()) / 1000.0);
}

}  // namespace fib
