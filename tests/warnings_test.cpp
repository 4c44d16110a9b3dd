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

TEST(Warnings, ConnectionsLeftWithoutAnAnswer) {
  Summary s = quiet();
  s.config.connections = 3;
  s.requests = 1000;
  s.starved = 2;
  EXPECT_EQ(client_warnings(s, seconds(10)),
            std::vector<std::string>{
                "2 of the 3 connections got no answer while the other got 1000: the server served only some of them "
                "(fib_server --mode sequential serves one connection at a time); the figures are those of 1 "
                "connection, not 3"});
  s.config.connections = 4;
  s.starved = 1;
  EXPECT_TRUE(
      client_warnings(s, seconds(10))[0].starts_with("1 of the 4 connections got no answer while the others "
                                                     "got 1000"));
}

TEST(Warnings, TheServerStoppedAnswering) {
  Summary s = quiet();
  s.measured = seconds(4);
  s.outages = {{std::chrono::milliseconds(1500), std::chrono::milliseconds(2500), true}};
  s.outage_count = 1;
  s.not_answering = std::chrono::milliseconds(2500);
  EXPECT_EQ(client_warnings(s, seconds(10)),
            std::vector<std::string>{"the server stopped answering 1.50 s into the run and did not answer again: "
                                     "2.50 s to the end; req/s is over the 1.50 s it answered"});
  s.outages[0].to_end = false;
  s.outages[0].length = std::chrono::milliseconds(800);
  s.not_answering = std::chrono::milliseconds(800);
  EXPECT_EQ(client_warnings(s, seconds(10)),
            std::vector<std::string>{
                "the server stopped answering 1.50 s into the run for 0.80 s; req/s is over the 3.20 s it answered"});
  s.outages.push_back({std::chrono::milliseconds(3000), std::chrono::milliseconds(200), false});
  s.outage_count = 2;
  s.not_answering = std::chrono::milliseconds(1000);
  EXPECT_EQ(client_warnings(s, seconds(10)),
            std::vector<std::string>{"the server stopped answering 2 times, 1.00 s in all, first 1.50 s into the run; "
                                     "req/s is over the 3.00 s it answered"});
}

}  // namespace
}  // namespace fib
