#include "fib/core/fib.h"

namespace fib {

std::uint64_t fib_recursive(unsigned n) {
  if (n <= 2) return n != 0;
  return fib_recursive(n - 1) + fib_recursive(n - 2);
}

std::optional<std::uint64_t> fib_recursive(unsigned n, Cancel& cancel) {
  if (n <= kCancelCheckAt) {
    if (cancel.requested()) return std::nullopt;
    return fib_recursive(n);
  }
  const auto a = fib_recursive(n - 1, cancel);
  if (!a) return std::nullopt;
  const auto b = fib_recursive(n - 2, cancel);
  if (!b) return std::nullopt;
  return *a + *b;
}

std::uint64_t fib_iterative(unsigned n) {
  std::uint64_t a = 0, b = 1;  // F(i), F(i + 1)
  for (unsigned i = 0; i < n; ++i) {
    const std::uint64_t next = a + b;  // wraps only past kMaxIndex, never returned
    a = b;
    b = next;
  }
  return a;
}

std::optional<std::uint64_t> fib(Algorithm algorithm, unsigned n, Cancel* cancel) {
  if (algorithm == Algorithm::iterative) return fib_iterative(n);
  return cancel != nullptr ? fib_recursive(n, *cancel) : fib_recursive(n);
}

unsigned default_max_n(Algorithm algorithm) {
  return algorithm == Algorithm::recursive ? kDefaultMaxRecursive : kMaxIndex;
}

std::string_view to_string(Algorithm algorithm) {
  return algorithm == Algorithm::recursive ? "recursive" : "iterative";
}

std::optional<Algorithm> algorithm_from_string(std::string_view name) {
  if (name == "recursive") return Algorithm::recursive;
  if (name == "iterative") return Algorithm::iterative;
  return std::nullopt;
}

}  // namespace fib
