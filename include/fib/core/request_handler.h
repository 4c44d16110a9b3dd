// Turns one request line into its reply. Pure: text in, text out.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "fib/core/fib.h"
#include "fib/core/reply_counts.h"

namespace fib {

// What a request line holds. Parsing is strict: one plain decimal number,
// optionally surrounded by spaces or tabs, leading zeros allowed.
struct Request {
  enum class Kind {
    number,        // n holds the index asked for
    blank,         // only spaces or tabs: ignored, like an empty line
    not_a_number,  // letters, inner spaces, a '+' sign, ...
    negative,      // a '-' followed by digits, not all zeros
    too_large,     // digits, but above the cap (or beyond 64 bits)
  };
  Kind kind;
  std::uint64_t n = 0;
};

Request parse_request(std::string_view line, unsigned max_n);

// The error line a request of this kind gets; nullopt for a number or a blank line.
std::optional<ErrorKind> error_kind(Request::Kind kind);

// A fixed buffer of replies waiting to be sent. No allocation.
class ReplyBuffer {
 public:
  // The longest single reply: an error line quoting a cut-short request (at most ~200 bytes).
  static constexpr std::size_t kMaxReplyBytes = 256;

  std::string_view view() const { return {data_.data(), size_}; }
  bool empty() const { return size_ == 0; }
  // True when one more reply might not fit: send and clear first.
  bool nearly_full() const { return data_.size() - size_ < kMaxReplyBytes; }
  void clear() { size_ = 0; }
  std::span<char> space() { return {data_.data() + size_, data_.size() - size_}; }
  void commit(std::size_t n) { size_ += n; }

 private:
  // Small, since every busy connection holds one: pipelined
  // replies go out every few hundred bytes. Not zeroed: untouched until
  // replies are written.
  std::array<char, 2 * kMaxReplyBytes> data_;
  std::size_t size_ = 0;
};

// How every line the server sends instead of an answer begins.
inline constexpr std::string_view kErrorPrefix = "error: ";

// The last line of every connection a stopping server closes: requests
// after the last answer were not answered. With and without its newline.
inline constexpr std::string_view kStoppingReply = "error: server stopping\n";
inline constexpr std::string_view kStoppingLine = kStoppingReply.substr(0, kStoppingReply.size() - 1);

// Recursive fib from this n on costs about a millisecond or more: a slow
// request (RequestHandler::slow).
inline constexpr unsigned kSlowRecursiveN = 30;

// Stateless and thread-safe: one handler serves every connection.
class RequestHandler {
 public:
  RequestHandler(Algorithm algorithm, unsigned max_n);

  Request parse(std::string_view line) const { return parse_request(line, max_n_); }
  // True when answering takes long enough (about a millisecond or more) that
  // replies already waiting should be sent first.
  bool slow(const Request& request) const;
  // Appends the reply to `request`, parsed from `line`, to `out`: "F(n)\n",
  // or one line starting "error: " that says what was wrong and what is
  // accepted. Appends nothing for a blank line. `out` must not be
  // nearly_full(). Returns false, appending nothing, when the computation
  // gave up because `cancel` (may be null) asked it to.
  bool respond(const Request& request, std::string_view line, ReplyBuffer& out, Cancel* cancel = nullptr) const;
  // parse() then respond(); false for a blank line.
  bool reply(std::string_view line, ReplyBuffer& out) const;
  // The error line for a line longer than kMaxRequestLineBytes.
  void reply_line_too_long(ReplyBuffer& out) const;
  // The last line a connection gets when the server stops: the requests
  // after the last answer were not answered.
  static void reply_stopping(ReplyBuffer& out);
  // The last line a connection gets when it completed no valid request for
  // `idle_timeout`.
  static void reply_idle(ReplyBuffer& out, std::chrono::milliseconds idle_timeout);

  Algorithm algorithm() const { return algorithm_; }
  unsigned max_n() const { return max_n_; }

 private:
  Algorithm algorithm_;
  unsigned max_n_;
};

}  // namespace fib
