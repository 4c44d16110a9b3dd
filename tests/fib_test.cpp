// Covers fib.h: known values, agreement of the two algorithms, names.
#include "fib_server/fib.h"

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
