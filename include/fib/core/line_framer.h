// Splits a byte stream into request lines. Pure: bytes in, lines out.
//
// Requests are a few bytes, so the framer starts with a small buffer of its
// own (an idle connection should cost little memory) and moves to a larger one, once, only when a
// line outgrows it. Either way memory stays bounded whatever a client sends,
// and the steady state allocates nothing. Not thread-safe: one framer
// belongs to one connection.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "fib/core/protocol.h"

namespace fib {

class LineFramer {
 public:
  // The buffer a framer starts with.
  static constexpr std::size_t kSmallBytes = 512;

  // Lines of up to `max_line_bytes`, counting a '\r' before its '\n'
  // (the server's: kMaxRequestLineBytes).
  explicit LineFramer(std::size_t max_line_bytes) : max_line_(max_line_bytes) {}
  std::size_t max_line_bytes() const { return max_line_; }

  // Where the next receive should write. Moves any partial line to the front
  // first (into the larger buffer if the small one is full), so views
  // returned earlier are invalidated. Empty only when a partial line already
  // passes the limit: see line_too_long().
  std::span<char> free_space();
  // Marks the first n bytes of free_space() as received.
  void commit(std::size_t n);

  // The next complete line, without its "\n" or "\r\n". Empty lines are
  // skipped. nullopt when only a partial line (or nothing) is left. The view
  // stays valid until the next free_space().
  std::optional<std::string_view> next_line();

  // Bytes received after the last complete line.
  bool has_partial() const { return begin_ != end_; }

  // Clients in the seed's style send "30" with no newline, one send per
  // request, and wait for the answer. So bytes left over once nothing more
  // is waiting on the socket may be taken as one whole request, but only
  // from a client that has never sent a '\n' (once one has, a read that ends
  // mid-line is just a line split over reads) and only as long as a request
  // (a longer run is a line still arriving).
  bool partial_may_be_request() const {
    return has_partial() && !seen_newline_ && end_ - begin_ <= kMaxUnterminatedRequestBytes;
  }
  // Takes the partial line as one whole request (a trailing '\r' is
  // dropped). May be empty or blank; the caller decides what that means.
  std::string_view take_partial();

  // True when a line has grown past max_line_bytes() without a '\n'.
  bool line_too_long() const { return end_ - begin_ > max_line_; }

  bool seen_newline() const { return seen_newline_; }
  // Starts over, empty (nothing partial may be left), as a framer that has
  // or has not seen a '\n' yet; gives the larger buffer back.
  void restart(bool seen_newline);

 private:
  char* data() { return large_ ? large_.get() : small_; }
  const char* data() const { return large_ ? large_.get() : small_; }
  std::size_t capacity() const { return large_ ? max_line_ + 1 : kSmallBytes; }

  std::size_t max_line_;
  char small_[kSmallBytes];        // not zeroed: untouched until data arrives
  std::unique_ptr<char[]> large_;  // max_line_ + 1 bytes, once a line needs them
  std::size_t begin_ = 0;          // first byte not yet returned as a line
  std::size_t end_ = 0;            // one past the last byte received
  std::size_t scan_ = 0;           // bytes before this hold no '\n'
  bool seen_newline_ = false;
};

}  // namespace fib
