// Covers rate_schedule.h: even spacing within and across connections, and
// catching up after a stall without a burst larger than the pipeline.
#include "fib/core/rate_schedule.h"

#include <algorithm>
#include <vector>

#include <gtest/gtest.h>

namespace fib {
namespace {

using namespace std::chrono_literals;

TEST(RateSchedule, OneConnectionIsEvenlySpaced) {
  const Clock::time_point start{};
  const RateSchedule s(start, 1000.0, 1, 0);
  EXPECT_EQ(s.interval(), 1ms);
  for (std::uint64_t k = 0; k < 100; ++k) EXPECT_EQ(s.due(k), start + k * 1ms);
}

TEST(RateSchedule, ConnectionsInterleaveEvenly) {
  const Clock::time_point start{};
  constexpr unsigned kConnections = 4;
  std::vector<Clock::time_point> all;
  for (unsigned i = 0; i < kConnections; ++i) {
    const RateSchedule s(start, 4000.0, kConnections, i);
    EXPECT_EQ(s.interval(), 1ms);  // each connection: 1000 req/s
    for (std::uint64_t k = 0; k < 50; ++k) all.push_back(s.due(k));
  }
  std::sort(all.begin(), all.end());
  for (std::size_t j = 1; j < all.size(); ++j) EXPECT_EQ(all[j] - all[j - 1], 250us) << j;
}

TEST(RateSchedule, NothingIsDueBeforeTheFirstSlot) {
  const Clock::time_point start{};
  const RateSchedule s(start, 100.0, 2, 1);  // first slot 10 ms after start
  EXPECT_EQ(s.sendable(start + 9ms, 0, 0, 1), 0u);
  EXPECT_EQ(s.sendable(start + 10ms, 0, 0, 1), 1u);
}

TEST(RateSchedule, OnTimeSendsOneAtATime) {
  const Clock::time_point start{};
  const RateSchedule s(start, 1000.0, 1, 0);
  std::uint64_t sent = 0;
  for (int step = 0; step < 100; ++step) {
    const std::uint64_t n = s.sendable(start + step * 1ms, sent, 0, 8);
    EXPECT_EQ(n, 1u) << step;
    sent += n;
  }
}

TEST(RateSchedule, CatchingUpNeverBurstsBeyondThePipeline) {
  const Clock::time_point start{};
  const RateSchedule s(start, 1000.0, 1, 0);
  // A 50 ms stall: 51 requests are due, nothing sent yet.
  EXPECT_EQ(s.sendable(start + 50ms, 0, 0, 1), 1u);
  EXPECT_EQ(s.sendable(start + 50ms, 0, 0, 4), 4u);
  EXPECT_EQ(s.sendable(start + 50ms, 0, 3, 4), 1u);
  EXPECT_EQ(s.sendable(start + 50ms, 0, 4, 4), 0u);  // pipeline full: wait for answers
  // Worked off one free slot at a time until the schedule is met, then on time again.
  std::uint64_t sent = 0;
  Clock::time_point now = start + 50ms;
  int steps = 0;
  while (const std::uint64_t n = s.sendable(now, sent, 0, 1)) {
    ASSERT_EQ(n, 1u);
    sent += n;
    now += 100us;  // answers come back quickly
    ASSERT_LT(++steps, 1000);
  }
  EXPECT_GE(sent, 51u);         // everything due during the stall went out
  EXPECT_GT(s.due(sent), now);  // caught up: the next one is not due yet
}

}  // namespace
}  // namespace fib
