#include "fib/core/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace fib {

// Values below 2 * kSubBuckets have a bucket each. Above, a value with bit
// width w keeps its top kSubBucketBits + 1 bits: shift = w - (bits + 1), and
// the bucket is shift * kSubBuckets + (value >> shift), which continues the
// exact range without a gap.
std::size_t Histogram::bucket_of(std::uint64_t value_ns) {
  value_ns = std::min(value_ns, kMaxValueNs);
  const int width = static_cast<int>(std::bit_width(value_ns));
  const int shift = std::max(0, width - (kSubBucketBits + 1));
  return static_cast<std::size_t>(shift) * kSubBuckets + static_cast<std::size_t>(value_ns >> shift);
}

std::uint64_t Histogram::lowest_in(std::size_t bucket) {
  if (bucket < 2 * kSubBuckets) return bucket;
  const std::size_t shift = bucket / kSubBuckets - 1;
  const std::uint64_t mantissa = bucket - shift * kSubBuckets;
  return mantissa << shift;
}

std::uint64_t Histogram::highest_in(std::size_t bucket) {
  if (bucket < 2 * kSubBuckets) return bucket;
  const std::size_t shift = bucket / kSubBuckets - 1;
  return lowest_in(bucket) + (std::uint64_t{1} << shift) - 1;
}

void Histogram::record(std::uint64_t value_ns) {
  ++counts_[bucket_of(value_ns)];
  ++count_;
  sum_ += value_ns;
  min_ = std::min(min_, value_ns);
  max_ = std::max(max_, value_ns);
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::clear() {
  counts_.fill(0);
  count_ = sum_ = max_ = 0;
  min_ = UINT64_MAX;
}

std::uint64_t Histogram::percentile(double percentile) const {
  if (count_ == 0) return 0;
  if (percentile >= 100) return max_;
  // The rank of the value asked for: ceil(p / 100 * count), less a hair so
  // that 99.9% of 1000 values is the 999th, not the 1000th, in floating point.
  const double exact = std::clamp(percentile, 0.0, 100.0) / 100.0 * static_cast<double>(count_);
  const auto rank = static_cast<std::uint64_t>(std::max(1.0, std::ceil(exact - 1e-9 * exact)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      // The middle of the bucket halves the worst-case error; never report
      // beyond what was actually seen.
      const std::uint64_t middle = lowest_in(i) + (highest_in(i) - lowest_in(i)) / 2;
      return std::clamp(middle, min(), max_);
    }
  }
  return max_;
}

}  // namespace fib
