// Covers load_generator.h end to end against the real fib_server on port 0:
// request counts, pipelining, the fixed rate, answer checking, each kind of
// error, stopping early.
#include "fib_server/load_generator.h"

#include <poll.h>

#include <atomic>
#include <system_error>
#include <thread>

#include <gtest/gtest.h>

#include "child_process.h"
#include "test_client.h"

namespace fib::testing {
namespace {

LoadConfig load(std::uint16_t port) {
  LoadConfig c;
  c.target = {"127.0.0.1", port};
  c.timeout_s = 10;
  return c;
}

TEST(LoadGenerator, StopsAfterExactlyTheRequestsAsked) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.connections = 3;
  c.requests = 1000;
  c.n = 10;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 1000u);
  EXPECT_EQ(s.latency.count(), 1000u);
  EXPECT_TRUE(s.clean());
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_GT(s.min_connection_rps, 0.0);
  EXPECT_GE(s.max_connection_rps, s.min_connection_rps);
  EXPECT_EQ(s.uncorrected, nullptr);
}

TEST(LoadGenerator, PipelinedRequestsAreAllAnsweredAndChecked) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.connections = 2;
  c.pipeline = 16;
  c.requests = 5000;
  c.n = 20;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 5000u);
  EXPECT_TRUE(s.clean()) << s.errors.total();
}

TEST(LoadGenerator, FixedRateSendsOnScheduleAndNoFaster) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.connections = 2;
  c.rate = 400;
  c.duration_s = 1.0;
  const Summary s = LoadGenerator(c).run();
  EXPECT_TRUE(s.clean());
  ASSERT_NE(s.uncorrected, nullptr);
  EXPECT_EQ(s.uncorrected->count(), s.latency.count());
  // Never ahead of the schedule; the server is fast, so not far behind either.
  EXPECT_LE(s.sent, s.scheduled + c.connections);
  EXPECT_LE(s.requests, 400u + c.connections);
  EXPECT_GE(s.requests, 200u);
  // Latency from the due time is never less than from the actual send.
  EXPECT_GE(s.latency.percentile(50), s.uncorrected->percentile(50));
}

TEST(LoadGenerator, FixedRateWithRequestCountStopsAtTheCount) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.rate = 1000;
  c.requests = 100;
  c.pipeline = 4;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 100u);
  EXPECT_TRUE(s.clean());
}

TEST(LoadGenerator, ErrorLinesCountAsWrongAnswers) {
  RunningServer server({.max_n = 10});
  LoadConfig c = load(server.port());
  c.n = 11;  // the server refuses it with an error line
  c.requests = 50;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors.wrong_answer, 50u);
  EXPECT_FALSE(s.clean());
}

TEST(LoadGenerator, UnansweredRequestTimesOut) {
  RunningServer server({.mode = Mode::sequential});
  Client hog(server.port());  // the sequential server serves only this one
  hog.send("1\n");
  ASSERT_EQ(hog.read_line(), "1");
  LoadConfig c = load(server.port());
  c.requests = 1;
  c.timeout_s = 0.3;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors.timeout, 1u);
}

TEST(LoadGenerator, ServerClosingTheConnectionCountsAsResetOrEof) {
  // A server that reads one request per connection and hangs up unanswered.
  Endpoint bound;
  Fd listener = listen_tcp({"127.0.0.1", 0}, &bound);
  std::atomic<bool> done{false};
  std::thread rude([&] {
    while (!done) {
      pollfd p{listener.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      Endpoint peer;
      Fd fd = accept_connection(listener.get(), &peer);
      char buffer[64];
      if (fd) receive_some(fd.get(), buffer);
    }
  });
  LoadConfig c = load(bound.port());
  c.requests = 5;
  const Summary s = LoadGenerator(c).run();
  done = true;
  rude.join();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors.reset_or_eof, 5u);
}

TEST(LoadGenerator, UnreachableServerFailsAtOnce) {
  LoadConfig c = load(free_port());
  c.requests = 1;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_THROW(LoadGenerator(c).run(), std::system_error);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(LoadGenerator, StopEndsAnOpenEndedRun) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.connections = 2;
  LoadGenerator generator(c);
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    generator.stop();
  });
  int intervals = 0;
  const Summary s = generator.run([&](const IntervalReport&) { ++intervals; });
  stopper.join();
  EXPECT_GT(s.requests, 0u);
  EXPECT_TRUE(s.clean());
  EXPECT_EQ(intervals, 0);  // stopped before the first second was up
  EXPECT_GT(s.seconds, 0.2);
}

TEST(LoadGenerator, IntervalReportsEverySecondAndWarmupIsNotCounted) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.warmup_s = 0.5;
  c.duration_s = 2.2;
  std::vector<IntervalReport> reports;
  const Summary s = LoadGenerator(c).run([&](const IntervalReport& r) { reports.push_back(r); });
  EXPECT_EQ(reports.size(), 2u);
  std::uint64_t in_reports = 0;
  for (const IntervalReport& r : reports) in_reports += r.requests;
  EXPECT_LE(in_reports, s.requests);
  EXPECT_NEAR(s.seconds, 2.2, 0.5);
  EXPECT_TRUE(s.clean());
}

}  // namespace
}  // namespace fib::testing
