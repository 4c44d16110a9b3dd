#include "connection_counters.h"

#include "rules.h"

namespace fib {

void ConnectionCounters::count(const ReplyCounts& sent, Clock::duration service) {
  add(answers, static_cast<std::int64_t>(sent.answers));
  for (std::size_t i = 0; i < kErrorKinds; ++i) {
    if (sent.errors[i] != 0) add(errors[i], static_cast<std::int64_t>(sent.errors[i]));
  }
  const std::uint64_t replies = sent.replies();
  add(service_times[service_time_bucket(service)], static_cast<std::int64_t>(replies));
  add(service_time_ns,
      static_cast<std::int64_t>(replies) * std::chrono::duration_cast<std::chrono::nanoseconds>(service).count());
}

void ConnectionCounters::add_to(ReplyCounts& replies, ServiceTimes& times) const {
  replies.answers += answers.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kErrorKinds; ++i) replies.errors[i] += errors[i].load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kServiceTimeBuckets; ++i)
    times.buckets[i] += service_times[i].load(std::memory_order_relaxed);
  times.sum_ns += service_time_ns.load(std::memory_order_relaxed);
}

}  // namespace fib
