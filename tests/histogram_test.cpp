// Covers histogram.h: bucket arithmetic, percentiles against exact ones on
// known data, merging.
#include "fib/core/histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace fib {
namespace {

// The exact percentile: the value at rank ceil(per_mille * n / 1000), in
// integers (percentiles here are whole per-mille).
std::uint64_t exact_percentile(std::vector<std::uint64_t> values, std::uint64_t per_mille) {
  std::sort(values.begin(), values.end());
  const std::size_t rank = std::max<std::size_t>(1, (per_mille * values.size() + 999) / 1000);
  return values[rank - 1];
}

double relative_error(std::uint64_t got, std::uint64_t want) {
  return std::abs(static_cast<double>(got) - static_cast<double>(want)) / static_cast<double>(want);
}

TEST(Histogram, BucketsAreContiguousAndNarrow) {
  for (std::uint64_t v : {0ull, 1ull, 255ull, 256ull, 257ull, 1000ull, 123456789ull, 60'000'000'000ull}) {
    const std::size_t b = Histogram::bucket_of(v);
    EXPECT_LE(Histogram::lowest_in(b), v);
    EXPECT_GE(Histogram::highest_in(b), v);
    EXPECT_EQ(Histogram::highest_in(b) + 1, Histogram::lowest_in(b + 1)) << v;
    EXPECT_LE(static_cast<double>(Histogram::highest_in(b) - Histogram::lowest_in(b)) /
                  static_cast<double>(std::max<std::uint64_t>(1, Histogram::lowest_in(b))),
              1.0 / 128)
        << v;
  }
}

TEST(Histogram, PercentilesWithinOnePercentFromAMicrosecondToMinutes) {
  std::mt19937_64 random(42);
  // Log-uniform from 1 us to 4 minutes.
  std::uniform_real_distribution<double> exponent(3.0, std::log10(240e9));
  std::vector<std::uint64_t> values;
  Histogram h;
  for (int i = 0; i < 200'000; ++i) {
    const auto v = static_cast<std::uint64_t>(std::pow(10.0, exponent(random)));
    values.push_back(v);
    h.record(v);
  }
  for (std::uint64_t per_mille : {10u, 100u, 500u, 900u, 990u, 999u}) {
    const double p = static_cast<double>(per_mille) / 10.0;
    const std::uint64_t want = exact_percentile(values, per_mille);
    EXPECT_LE(relative_error(h.percentile(p), want), 0.01)
        << "p" << p << " got " << h.percentile(p) << " want " << want;
  }
  EXPECT_EQ(h.count(), values.size());
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(h.percentile(100), h.max());
}

TEST(Histogram, P999OfAThousandIsNotTheMax) {
  Histogram h;
  for (int i = 0; i < 999; ++i) h.record(1'000'000);
  h.record(5'000'000'000);
  EXPECT_LE(relative_error(h.percentile(99.9), 1'000'000), 0.01);
  EXPECT_EQ(h.percentile(100), 5'000'000'000u);
}

TEST(Histogram, KnownSmallDataSet) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v * 1000);  // 1 us .. 100 us
  EXPECT_LE(relative_error(h.percentile(50), 50'000), 0.01);
  EXPECT_LE(relative_error(h.percentile(90), 90'000), 0.01);
  EXPECT_LE(relative_error(h.percentile(99), 99'000), 0.01);
  EXPECT_DOUBLE_EQ(h.mean(), 50'500.0);
}

TEST(Histogram, ValuesBeyondTheRangeAreClampedButMaxIsExact) {
  Histogram h;
  h.record(Histogram::kMaxValueNs * 10);
  EXPECT_EQ(h.max(), Histogram::kMaxValueNs * 10);
  EXPECT_EQ(h.count(), 1u);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  for (std::uint64_t v = 1; v < 5000; ++v) {
    (v % 3 ? a : b).record(v * 997);
    all.record(v * 997);
  }
  a.merge(b);
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(a.percentile(p), all.percentile(p));
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_EQ(a.min(), all.min());
  a.clear();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.percentile(50), 0u);
}

}  // namespace
}  // namespace fib
