// What a server counts of the replies it sends: answers and error lines by
// kind, and how long each took, in fixed buckets. Pure: plain numbers that
// the server keeps per connection (or per event loop) and adds up when its
// statistics are read.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fib/core/clock.h"

namespace fib {

// Why a request got an error line instead of an answer.
enum class ErrorKind {
  not_a_number,   // letters, inner spaces, a '+' sign, ...
  negative,       // a '-' followed by digits
  too_large,      // above the cap (--max-n)
  line_too_long,  // past kMaxRequestLineBytes: the connection closes after it
};
struct ErrorKindInfo {
  ErrorKind kind;
  std::string_view label;  // the log's and the metrics' name for it
};
inline constexpr std::array kErrorKindInfo{
    ErrorKindInfo{ErrorKind::not_a_number, "not_a_number"},
    ErrorKindInfo{ErrorKind::negative, "negative"},
    ErrorKindInfo{ErrorKind::too_large, "too_large"},
    ErrorKindInfo{ErrorKind::line_too_long, "line_too_long"},
};
inline constexpr std::size_t kErrorKinds = kErrorKindInfo.size();
static_assert([] {
  for (std::size_t i = 0; i < kErrorKinds; ++i) {
    if (static_cast<std::size_t>(kErrorKindInfo[i].kind) != i) return false;
  }
  return true;
}());
// "not_a_number", "negative", "too_large", "line_too_long".
std::string_view to_string(ErrorKind kind);

// Replies sent, by kind.
struct ReplyCounts {
  std::uint64_t answers = 0;                        // fib(n) lines
  std::array<std::uint64_t, kErrorKinds> errors{};  // error lines, by ErrorKind

  void count(ErrorKind kind) { ++errors[static_cast<std::size_t>(kind)]; }
  std::uint64_t error_lines() const;
  std::uint64_t replies() const { return answers + error_lines(); }
  ReplyCounts& operator+=(const ReplyCounts& other);
};

// A request's service time: from the receive that brought its last byte to
// its reply handed to the kernel (time spent queued in the kernel before
// that receive is not seen). Counted in fixed buckets from 10 us to 10 s, 1-2.5-5 a
// decade, as a Prometheus histogram has them.
inline constexpr std::array<std::chrono::nanoseconds, 19> kServiceTimeBounds{
    std::chrono::microseconds{10},  std::chrono::microseconds{25},   std::chrono::microseconds{50},
    std::chrono::microseconds{100}, std::chrono::microseconds{250},  std::chrono::microseconds{500},
    std::chrono::milliseconds{1},   std::chrono::microseconds{2500}, std::chrono::milliseconds{5},
    std::chrono::milliseconds{10},  std::chrono::milliseconds{25},   std::chrono::milliseconds{50},
    std::chrono::milliseconds{100}, std::chrono::milliseconds{250},  std::chrono::milliseconds{500},
    std::chrono::seconds{1},        std::chrono::milliseconds{2500}, std::chrono::seconds{5},
    std::chrono::seconds{10}};
// One bucket per bound (at most that long), and one past the last.
inline constexpr std::size_t kServiceTimeBuckets = kServiceTimeBounds.size() + 1;
// The bucket a service time falls in.
std::size_t service_time_bucket(Clock::duration time);

// Service times counted per bucket (not cumulative), and their sum.
struct ServiceTimes {
  std::array<std::uint64_t, kServiceTimeBuckets> buckets{};
  std::uint64_t sum_ns = 0;

  std::uint64_t count() const;
  ServiceTimes& operator+=(const ServiceTimes& other);
};

}  // namespace fib
