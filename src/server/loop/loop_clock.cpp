#include "loop_clock.h"

#include <pthread.h>

#include <algorithm>
#include <optional>

namespace fib {

namespace {

std::optional<std::uint64_t> read(clockid_t clock) {
  timespec used{};
  if (::clock_gettime(clock, &used) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(used.tv_sec) * 1'000'000'000U + static_cast<std::uint64_t>(used.tv_nsec);
}

}  // namespace

void LoopClock::start() {
  if (::pthread_getcpuclockid(::pthread_self(), &clock_) == 0) running_.store(true, std::memory_order_release);
}

void LoopClock::stop() {
  const std::optional<std::uint64_t> used = running_.load(std::memory_order_relaxed) ? read(clock_) : std::nullopt;
  if (used) at_end_.store(*used, std::memory_order_relaxed);
  running_.store(false, std::memory_order_release);
}

std::uint64_t LoopClock::cpu_ns() const {
  // A thread that has just ended has no clock any more: what it read last.
  std::optional<std::uint64_t> now;
  if (running_.load(std::memory_order_acquire)) now = read(clock_);
  if (!now) now = at_end_.load(std::memory_order_relaxed);
  std::uint64_t seen = reported_.load(std::memory_order_relaxed);
  while (seen < *now && !reported_.compare_exchange_weak(seen, *now, std::memory_order_relaxed)) {
  }
  return std::max(seen, *now);
}

}  // namespace fib
