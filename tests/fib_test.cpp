// Covers fib.h: known values, agreement of the two algorithms, names.
#include "fib/core/fib.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace fib {
namespace {

TEST(Fib, KnownValues) {
  EXPECT_EQ(fib_iterative(0), 0u);
  EXPECT_EQ(fib_iterative(1), 1u);
  EXPECT_EQ(fib_iterative(2), 1u);
  EXPECT_EQ(fib_iterative(10), 55u);
  EXPECT_EQ(fib_iterative(30), 832040u);
  EXPECT_EQ(fib_iterative(50), 12586269025u);
  EXPECT_EQ(fib_iterative(92), 7540113804746346429u);
  EXPECT_EQ(fib_iterative(93), 12200160415121876738u);
  EXPECT_EQ(fib_recursive(0), 0u);
  EXPECT_EQ(fib_recursive(1), 1u);
  EXPECT_EQ(fib_recursive(2), 1u);
  EXPECT_EQ(fib_recursive(30), 832040u);
}

TEST(Fib, AlgorithmsAgreeUpTo40) {
  for (unsigned n = 0; n <= 40; ++n) {
    EXPECT_EQ(fib_recursive(n), fib_iterative(n)) << "n = " << n;
    EXPECT_EQ(fib(Algorithm::recursive, n), fib(Algorithm::iterative, n)) << "n = " << n;
  }
}

TEST(Fib, CancellableRecursionGivesTheSameAnswers) {
  const std::atomic<bool> go_on{false};
  for (unsigned n = 0; n <= 40; ++n) EXPECT_EQ(fib_recursive(n, go_on), fib_iterative(n)) << "n = " << n;
  CancelFlag never(&go_on);
  EXPECT_EQ(fib(Algorithm::recursive, 35, &never), fib_iterative(35));
}

TEST(Fib, CancelledRecursionGivesUpAtOnce) {
  const std::atomic<bool> cancelled{true};
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(fib_recursive(kMaxIndex, cancelled), std::nullopt);  // centuries of work otherwise
  CancelFlag now(&cancelled);
  EXPECT_EQ(fib(Algorithm::recursive, 45, &now), std::nullopt);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(100));
  // A small one is checked once, at the start; the iterative algorithm never gives up.
  EXPECT_EQ(fib_recursive(kCancelCheckAt, cancelled), std::nullopt);
  EXPECT_EQ(fib(Algorithm::iterative, 90, &now), fib_iterative(90));
}

TEST(Fib, CancellingMidwayStopsARunningComputation) {
  std::atomic<bool> cancel{false};
  std::optional<std::uint64_t> result{1};
  std::thread computing([&] { result = fib_recursive(kMaxIndex, cancel); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto cancelled_at = std::chrono::steady_clock::now();
  cancel = true;
  computing.join();
  EXPECT_EQ(result, std::nullopt);
  EXPECT_LT(std::chrono::steady_clock::now() - cancelled_at, std::chrono::milliseconds(500));
}

TEST(Fib, EachValueIsTheSumOfThePreviousTwoUpTo93) {
  for (unsigned n = 2; n <= kMaxIndex; ++n) {
    EXPECT_EQ(fib_iterative(n), fib_iterative(n - 1) + fib_iterative(n - 2)) << "n = " << n;
  }
  EXPECT_GT(fib_iterative(kMaxIndex), fib_iterative(kMaxIndex - 1));  // no wrap-around at 93
}

TEST(Fib, DefaultCapsAndNames) {
  EXPECT_EQ(default_max_n(Algorithm::recursive), kDefaultMaxRecursive);
  EXPECT_EQ(default_max_n(Algorithm::iterative), 93u);
  EXPECT_EQ(algorithm_from_string("recursive"), Algorithm::recursive);
  EXPECT_EQ(algorithm_from_string("iterative"), Algorithm::iterative);
  EXPECT_FALSE(algorithm_from_string("fast").has_value());
  EXPECT_EQ(to_string(Algorithm::iterative), "iterative");
}

}  // namespace
}  // namespace fib
