// Covers warnings.h: each warning fib_perf gives about its own measurement.
#include "fib/perf/warnings.h"

#include <gtest/gtest.h>

namespace fib {
namespace {

using std::chrono::seconds;

// A quiet closed-loop run of 10 s on 2 cores.
Summary quiet() {
  Summary s;
  s.cores = 2;
  s.cpu_user = seconds(2);
  s.cpu_system = seconds(2);
  s.busiest_thread_cpu = 0.3;
  return s;
}

TEST(Warnings, AQuietRunHasNone) { EXPECT_TRUE(client_warnings(quiet(), seconds(10)).empty()); }

TEST(Warnings, ClientUsingTheMachine) {
  Summary s = quiet();
  s.cpu_user = seconds(12);
  s.cpu_system = seconds(7);  // 19 of the 20 core-seconds
  const auto w = client_warnings(s, seconds(10));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "the client used 95% of the 2 cores it may run on: it may be what limits this measurement");
}

TEST(Warnings, BusyClientThread) {
  Summary s = quiet();
  s.busiest_thread_cpu = 0.97;
  const auto w = client_warnings(s, seconds(10));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "a client thread was on the CPU 97% of the run: the client may be what limits this measurement");
}

TEST(Warnings, LateSendsUnderRate) {
  Summary s = quiet();
  s.config.rate = 1000;
  s.sent = 10'000;
  s.scheduled = 10'000;
  s.sent_late = 200;
  const auto w = client_warnings(s, seconds(10));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(w[0].starts_with("200 requests went out more than 1 ms late")) << w[0];
  s.config.rate.reset();  // late sends mean nothing in a closed loop
  EXPECT_TRUE(client_warnings(s, seconds(10)).empty());
}

TEST(Warnings, BehindTheScheduleWithThePipelineFull) {
  Summary s = quiet();
  s.config.rate = 1000;
  s.sent = 9'000;
  s.scheduled = 10'000;
  const auto w = client_warnings(s, seconds(10));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_TRUE(w[0].starts_with("fell behind the --rate schedule: sent 9000 of the 10000 requests due")) << w[0];
}

TEST(Warnings, ConnectionsThatGaveUp) {
  Summary s = quiet();
  s.gave_up = 1;
  EXPECT_EQ(client_warnings(s, seconds(10)),
            std::vector<std::string>{"1 connection gave up (server unreachable, or a timeout under --requests)"});
  s.gave_up = 3;
  EXPECT_TRUE(client_warnings(s, seconds(10))[0].starts_with("3 connections gave up"));
}

}  // namespace
}  // namespace fib
