// Fibonacci numbers, the work each request asks for. Pure: no I/O, no state.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

namespace fib {

// F(0) = 0, F(1) = F(2) = 1.
enum class Algorithm {
  recursive,  // the naive doubly recursive definition: deliberately CPU-bound
  iterative,  // a loop: microseconds for any n that fits 64 bits
};

// The largest n whose F(n) fits in 64 bits: F(93) = 12200160415121876738.
inline constexpr unsigned kMaxIndex = 93;
// The default cap under the recursive algorithm: F(45) costs about a second
// of CPU (a few on a slow machine or an unoptimised build), so no single
// request can pin a core for long.
inline constexpr unsigned kDefaultMaxRecursive = 45;
// The largest cap --max-n may set under the recursive algorithm. Each step
// up costs 1.6 times the one before: F(50) takes about 11 times F(45)'s
// second, tens of seconds a request; F(93) would take millennia. A server
// should answer within a client's patience; past this, use the iterative
// algorithm.
inline constexpr unsigned kMaxRecursive = 50;

// What a long computation asks, once per piece of a fraction of a
// millisecond of work, whether to give up: a stopping server, or a client
// that has gone away.
class Cancel {
 public:
  virtual bool requested() = 0;

 protected:
  Cancel() = default;
  Cancel(const Cancel&) = default;
  Cancel& operator=(const Cancel&) = default;
  ~Cancel() = default;
};

// Gives up once a flag (none: never) turns true.
class CancelFlag final : public Cancel {
 public:
  explicit CancelFlag(const std::atomic<bool>* flag) : flag_(flag) {}
  bool requested() override { return flag_ != nullptr && flag_->load(std::memory_order_relaxed); }

 private:
  const std::atomic<bool>* flag_;
};

// The same definition as the Go and Python servers (base case n <= 2). The
// compiler may optimise it as it sees fit: that is part of what a C++
// versus Go comparison measures.
std::uint64_t fib_recursive(unsigned n);
// The same, giving up (nullopt) once `cancel` asks to, as a stopping server
// needs. It is asked once per call with n <= kCancelCheckAt (a fraction of a
// millisecond of work each): a cost that does not show, and no check at all
// below that size.
inline constexpr unsigned kCancelCheckAt = 27;
std::optional<std::uint64_t> fib_recursive(unsigned n, Cancel& cancel);
inline std::optional<std::uint64_t> fib_recursive(unsigned n, const std::atomic<bool>& cancel) {
  CancelFlag flag(&cancel);
  return fib_recursive(n, flag);
}
// Exact for every n <= kMaxIndex.
std::uint64_t fib_iterative(unsigned n);
// `cancel` (may be null) is checked by the recursive algorithm only; the
// iterative one takes microseconds.
std::optional<std::uint64_t> fib(Algorithm algorithm, unsigned n, Cancel* cancel = nullptr);

unsigned default_max_n(Algorithm algorithm);
std::string_view to_string(Algorithm algorithm);
std::optional<Algorithm> algorithm_from_string(std::string_view name);

}  // namespace fib
