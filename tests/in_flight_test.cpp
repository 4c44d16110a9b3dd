// Covers in_flight.h: the ring of requests a client connection has in flight.
#include "fib/perf/in_flight.h"

#include <gtest/gtest.h>

namespace fib {
namespace {

Clock::time_point at(int ms) { return Clock::time_point(std::chrono::milliseconds(ms)); }

TEST(InFlight, OldestComesOutFirst) {
  InFlight ring(3);
  ring.push({at(1), at(10)});
  ring.push({at(2), at(20)});
  EXPECT_EQ(ring.size(), 2u);
  EXPECT_EQ(ring[0].due, at(1));
  EXPECT_EQ(ring[1].sent, at(20));
  EXPECT_EQ(ring.pop().due, at(1));
  EXPECT_EQ(ring.pop().due, at(2));
  EXPECT_TRUE(ring.empty());
}

TEST(InFlight, RoomIsThePipelineLeft) {
  InFlight ring(2);
  EXPECT_EQ(ring.room(), 2u);
  ring.push({at(1), at(1)});
  EXPECT_EQ(ring.room(), 1u);
  ring.push({at(2), at(2)});
  EXPECT_EQ(ring.room(), 0u);
  ring.pop();
  EXPECT_EQ(ring.room(), 1u);
}

TEST(InFlight, WrapsAroundWithoutLosingOrder) {
  InFlight ring(3);
  int next = 0, expected = 0;
  for (int round = 0; round < 10; ++round) {
    while (ring.room() > 0) ring.push({at(next), at(next)}), ++next;
    for (int i = 0; i < 2; ++i) EXPECT_EQ(ring.pop().due, at(expected++));
  }
  for (std::size_t i = 0; i < ring.size(); ++i) EXPECT_EQ(ring[i].due, at(expected + static_cast<int>(i)));
}

TEST(InFlight, ClearForgetsEverything) {
  InFlight ring(2);
  ring.push({at(1), at(1)});
  ring.pop();
  ring.push({at(2), at(2)});
  ring.clear();
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.room(), 2u);
  ring.push({at(3), at(3)});
  EXPECT_EQ(ring[0].due, at(3));
}

}  // namespace
}  // namespace fib
