#include "fib/core/reply_counts.h"

#include <algorithm>
#include <numeric>

namespace fib {

std::string_view to_string(ErrorKind kind) { return kErrorKindInfo[static_cast<std::size_t>(kind)].label; }

std::uint64_t ReplyCounts::error_lines() const {
  return std::accumulate(errors.begin(), errors.end(), std::uint64_t{0});
}

ReplyCounts& ReplyCounts::operator+=(const ReplyCounts& other) {
  answers += other.answers;
  for (std::size_t i = 0; i < kErrorKinds; ++i) errors[i] += other.errors[i];
  return *this;
}

std::size_t service_time_bucket(Clock::duration time) {
  return static_cast<std::size_t>(std::lower_bound(kServiceTimeBounds.begin(), kServiceTimeBounds.end(), time) -
                                  kServiceTimeBounds.begin());
}

std::uint64_t ServiceTimes::count() const { return std::accumulate(buckets.begin(), buckets.end(), std::uint64_t{0}); }

ServiceTimes& ServiceTimes::operator+=(const ServiceTimes& other) {
  for (std::size_t i = 0; i < kServiceTimeBuckets; ++i) buckets[i] += other.buckets[i];
  sum_ns += other.sum_ns;
  return *this;
}

}  // namespace fib
