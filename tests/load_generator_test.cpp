// Covers load_generator.h end to end: against the real fib_server on port 0
// (request counts, pipelining, the fixed rate, warm-up, stopping early), and
// against scripted servers for what fib_server never does (wrong numbers,
// stalls, silence, hanging up).
#include "fib/perf/load_generator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
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
  c.timeout = from_seconds(10);
  return c;
}

// Answers every request line with `answer`; on the `stall_at`-th request
// (counted over all connections) waits `stall` first. Returns when the client
// closes or after `silence` with nothing received.
std::function<void(int)> answering(std::string answer, int stall_at = -1, std::chrono::milliseconds stall = 0ms) {
  auto count = std::make_shared<std::atomic<int>>(0);
  return [=](int fd) {
    char buffer[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return;
      const std::ptrdiff_t n = receive_some(fd, buffer);
      if (n <= 0) return;
      for (std::ptrdiff_t i = 0; i < n; ++i) {
        if (buffer[i] != '\n') continue;
        if (++*count == stall_at) std::this_thread::sleep_for(stall);
        if (!send_all(fd, answer + "\n")) return;
      }
    }
  };
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
  EXPECT_EQ(s.unsent, 0u);
  EXPECT_GT(s.min_connection_rps, 0.0);
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

TEST(LoadGenerator, FixedRateSendsOnSchedule) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.connections = 2;
  c.rate = 400;
  c.duration = from_seconds(1.0);
  const Summary s = LoadGenerator(c).run();
  EXPECT_TRUE(s.clean());
  ASSERT_NE(s.uncorrected, nullptr);
  EXPECT_NEAR(static_cast<double>(s.scheduled), 400.0, 60.0);  // 1 s at 400 req/s, give or take a late stop
  EXPECT_GE(s.sent + s.unsent, s.scheduled);                   // every request due was sent, or is counted unsent
  EXPECT_LE(s.requests, s.scheduled);
  EXPECT_GE(s.requests, s.scheduled / 2);  // a fast server answers nearly all of them
}

TEST(LoadGenerator, FixedRateWithRequestCountStopsAtTheCount) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.rate = 1000;
  c.requests = 100;
  c.pipeline = 4;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 100u);
  EXPECT_EQ(s.scheduled, 100u);
  EXPECT_TRUE(s.clean());
}

TEST(LoadGenerator, ServerStallShowsInTheCorrectedLatencyOnly) {
  // 200 req/s; the 40th request is held for 400 ms, and the ones due
  // meanwhile wait behind it.
  ScriptedServer stalling(answering("1", 40, 400ms));
  LoadConfig c = load(stalling.port());
  c.rate = 200;
  c.duration = from_seconds(1.5);
  const Summary s = LoadGenerator(c).run();
  ASSERT_NE(s.uncorrected, nullptr);
  EXPECT_TRUE(s.clean());
  // From the schedule: the stalled request and ~80 due behind it, up to 400 ms late.
  EXPECT_GE(s.latency.max(), 350'000'000u);
  EXPECT_GE(s.latency.percentile(90), 50'000'000u);
  // From the actual send: only the one request saw the stall.
  EXPECT_LT(s.uncorrected->percentile(90), 50'000'000u);
}

TEST(LoadGenerator, StallAtTheEndOfARateRunStillShows) {
  ScriptedServer stalling(answering("1", 20, 5s));  // stalls until after the run
  LoadConfig c = load(stalling.port());
  c.rate = 100;
  c.duration = from_seconds(1.0);
  const Summary s = LoadGenerator(c).run();
  EXPECT_GT(s.unsent + s.in_flight, 50u);
  EXPECT_GE(s.latency.max(), 500'000'000u);  // waited most of the run, though unanswered
}

TEST(LoadGenerator, ErrorLinesCountAsErrorRepliesAndAreShown) {
  RunningServer server({.max_n = 10});
  LoadConfig c = load(server.port());
  c.n = 11;  // the server refuses it with an error line
  c.requests = 50;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors.error_reply, 50u);
  EXPECT_EQ(s.errors.wrong_answer, 0u);
  EXPECT_EQ(s.unexpected_replies,
            std::vector<std::string>{"error: \"11\" is too large; the largest n this server accepts is 10"});
  EXPECT_FALSE(s.clean());
}

TEST(LoadGenerator, RepliesFromEarlySecondsAreStillShownAtTheEnd) {
  std::atomic<bool> lied{false};
  ScriptedServer liar([&lied](int fd) {  // one wrong number first, then right answers
    char buffer[256];
    while (receive_some(fd, buffer) > 0) {
      if (!send_all(fd, lied.exchange(true) ? "1\n" : "7\n")) return;
    }
  });
  LoadConfig c = load(liar.port());
  c.duration = from_seconds(1.6);  // the live collection takes the first second's
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.errors.wrong_answer, 1u);
  EXPECT_EQ(s.unexpected_replies, std::vector<std::string>{"7"});
}

TEST(LoadGenerator, WrongNumbersAreCaughtInWarmupToo) {
  ScriptedServer liar(answering("2"));  // F(1) is 1
  LoadConfig c = load(liar.port());
  c.warmup = from_seconds(0.2);
  c.requests = 20;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_GT(s.errors.wrong_answer, 20u);  // the 20 measured and those in the warm-up
}

TEST(LoadGenerator, UnansweredRequestTimesOutInTheClosedLoop) {
  RunningServer server({.mode = Mode::sequential});
  Client hog(server.port());  // the sequential server serves only this one
  hog.send("1\n");
  ASSERT_EQ(hog.read_line(), "1");
  LoadConfig c = load(server.port());
  c.requests = 50;
  c.timeout = from_seconds(0.3);
  const auto started = std::chrono::steady_clock::now();
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors.timeout, 1u);  // one timeout, then the connection gives up its quota
  EXPECT_EQ(s.unsent, 49u);
  EXPECT_EQ(s.gave_up, 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

TEST(LoadGenerator, UnansweredRequestTimesOutInTheOpenLoop) {
  ScriptedServer silent([](int fd) {
    char buffer[256];
    while (receive_some(fd, buffer) > 0) {
    }
  });
  LoadConfig c = load(silent.port());
  c.rate = 50;
  c.duration = from_seconds(1.0);
  c.timeout = from_seconds(0.2);
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_GT(s.errors.timeout, 0u);
}

TEST(LoadGenerator, ServerClosingTheConnectionCountsAsResetOrEof) {
  // Reads one request per connection and hangs up unanswered.
  ScriptedServer rude([](int fd) {
    char buffer[64];
    receive_some(fd, buffer);
  });
  LoadConfig c = load(rude.port());
  c.requests = 5;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors.reset_or_eof, 5u);
}

TEST(LoadGenerator, StoppingLineCountsAsTheServerClosingNotAsAWrongAnswer) {
  // Reads one request per connection and answers that it is stopping.
  ScriptedServer stopping([](int fd) {
    char buffer[64];
    receive_some(fd, buffer);
    send_all(fd, "error: server stopping\n");
  });
  LoadConfig c = load(stopping.port());
  c.requests = 5;
  const Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.errors.reset_or_eof, 5u);
  EXPECT_EQ(s.errors.wrong_answer, 0u);
}

TEST(LoadGenerator, UnreachableServerFailsAtOnce) {
  LoadConfig c = load(free_port());
  c.requests = 1;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_THROW(LoadGenerator(c).run(), std::system_error);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(LoadGenerator, ServerThatNeverCompletesTheHandshakeTimesOut) {
  // A listener whose accept queue is full: the kernel drops further SYNs,
  // so a connect would wait for minutes.
  Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener.get(), 0), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length);
  std::vector<Fd> fillers;
  for (int i = 0; i < 4; ++i) {
    fillers.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    ::connect(fillers.back().get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  }
  std::this_thread::sleep_for(100ms);
  LoadConfig c = load(ntohs(address.sin_port));
  c.requests = 1;
  c.timeout = from_seconds(0.5);
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
  EXPECT_NEAR(to_seconds(s.measured), 0.3, 0.25);
}

TEST(LoadGenerator, WarmupIsNotCountedAndIntervalsAreReportedEverySecond) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.rate = 100;
  c.warmup = from_seconds(1.0);
  c.duration = from_seconds(2.2);
  std::vector<IntervalReport> reports;
  const Summary s = LoadGenerator(c).run([&](const IntervalReport& r) { reports.push_back(r); });
  EXPECT_TRUE(s.clean());
  EXPECT_EQ(reports.size(), 2u);
  // 100 requests went out in the warm-up; only the 220 due after it count.
  EXPECT_NEAR(static_cast<double>(s.scheduled), 220.0, 25.0);
  EXPECT_LE(s.requests, s.scheduled);
  for (const IntervalReport& r : reports)
    EXPECT_NEAR(static_cast<double>(r.requests) / to_seconds(r.length), 100.0, 30.0);
}

}  // namespace
}  // namespace fib::testing
