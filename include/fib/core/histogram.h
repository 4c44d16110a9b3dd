// A latency histogram in the spirit of HdrHistogram. Pure: no I/O, no locks.
//
// Buckets are log-linear: 128 linear sub-buckets per power of two, so any
// value from 1 ns up to kMaxValueNs is kept within 1/256 (0.4%) of its true
// value, and recording is O(1): a bit scan, a shift and an increment. Not
// thread-safe: each thread records into its own and they are merged later.
#pragma once

#include <array>
#include <cstdint>

namespace fib {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;  // 128 sub-buckets per octave
  // Values above this (about 4.6 minutes) are recorded as this.
  static constexpr std::uint64_t kMaxValueNs = (std::uint64_t{1} << 38) - 1;

  void record(std::uint64_t value_ns);
  void merge(const Histogram& other);
  void clear();

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }  // exact, not bucketed
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }
  // The value below which `percentile` percent of the recorded values fall
  // (0 < percentile <= 100), within the bucket precision; 0 when empty.
  std::uint64_t percentile(double percentile) const;

  // Bucket arithmetic, exposed for tests.
  static std::size_t bucket_of(std::uint64_t value_ns);
  static std::uint64_t lowest_in(std::size_t bucket);
  static std::uint64_t highest_in(std::size_t bucket);

 private:
  static constexpr std::size_t kSubBuckets = std::size_t{1} << kSubBucketBits;
  static constexpr std::size_t kBuckets = (38 - kSubBucketBits) * kSubBuckets + kSubBuckets;

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace fib
