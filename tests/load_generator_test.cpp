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
  EXPECT_EQ(s.starved, 0u);
  EXPECT_EQ(s.outage_count, 0u);
  EXPECT_EQ(s.answering(), s.measured);
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

// A sequential server serves the first connection only: the other two get
// nothing, without an error, and are counted as starved.
TEST(LoadGenerator, ConnectionsASequentialServerLeavesWaitingAreStarved) {
  RunningServer server({.mode = Mode::sequential});
  LoadConfig c = load(server.port());
  c.connections = 3;
  c.duration = from_seconds(1.0);
  const Summary s = LoadGenerator(c).run();
  EXPECT_GT(s.requests, 0u);
  EXPECT_EQ(s.starved, 2u);
  EXPECT_EQ(s.min_connection_rps, 0.0);
  EXPECT_TRUE(s.clean());  // no errors: starved is a verdict of its own
  EXPECT_EQ(s.outage_count, 0u);
}

// Connections that had nothing to ask are not starved: a --requests share
// of 0, or nothing due under a low --rate.
TEST(LoadGenerator, ConnectionsWithNothingToAskAreNotStarved) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.connections = 3;
  c.requests = 2;  // the third connection's share is 0
  Summary s = LoadGenerator(c).run();
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.starved, 0u);
  c.requests.reset();
  c.rate = 1;  // one every 3 s each, due at 0, 1 and 2 s: in 0.9 s only the first connection has one due
  c.duration = from_seconds(0.9);
  s = LoadGenerator(c).run();
  EXPECT_GE(s.requests, 1u);
  EXPECT_EQ(s.starved, 0u);
}

// With a warm-up, the waiting connections' requests went out in the warm-up:
// they are starved all the same.
TEST(LoadGenerator, ConnectionsLeftWaitingSinceTheWarmupAreStarved) {
  RunningServer server({.mode = Mode::sequential});
  LoadConfig c = load(server.port());
  c.connections = 2;
  c.warmup = from_seconds(0.3);
  c.duration = from_seconds(0.5);
  const Summary s = LoadGenerator(c).run();
  EXPECT_GT(s.requests, 0u);
  EXPECT_EQ(s.starved, 1u);
}

// The server stops 0.8 s into a 2.5 s run and never comes back: one outage
// from its last answer to the end, and the headline rate is over the time
// it answered.
TEST(LoadGenerator, AServerThatGoesAwayIsAnOutageToTheEnd) {
  RunningServer server;
  LoadConfig c = load(server.port());
  c.connections = 2;
  c.duration = from_seconds(2.5);
  std::thread stopper([&] {
    std::this_thread::sleep_for(800ms);
    server.stop_and_join();
  });
  const Summary s = LoadGenerator(c).run();
  stopper.join();
  EXPECT_GT(s.requests, 0u);
  EXPECT_GT(s.errors.connect, 0u);
  EXPECT_FALSE(s.clean());
  ASSERT_EQ(s.outage_count, 1u);
  ASSERT_EQ(s.outages.size(), 1u);
  const Outage& o = s.outages[0];
  EXPECT_TRUE(o.to_end);
  EXPECT_NEAR(to_seconds(o.at), 0.8, 0.4);
  EXPECT_NEAR(to_seconds(o.at + o.length), to_seconds(s.measured), 0.001);
  EXPECT_EQ(s.not_answering, o.length);
  EXPECT_EQ(s.answering(), o.at);
  EXPECT_DOUBLE_EQ(s.rps(), static_cast<double>(s.requests) / to_seconds(o.at));
  EXPECT_GT(s.rps(), 2 * s.rps_whole_run());  // not averaged over the 1.7 s of silence
  // Each connection's rate is over the time the server answered, too.
  EXPECT_GT(s.max_connection_rps * 2 * to_seconds(o.at), static_cast<double>(s.requests) * 0.99);
}

// Answers "1" except between 0.6 s and 1.2 s after the first request, when
// it reads requests and answers none.
std::function<void(int)> silent_for_a_while() {
  auto first = std::make_shared<std::atomic<std::int64_t>>(0);
  return [first](int fd) {
    char buffer[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) return;
      const std::ptrdiff_t n = receive_some(fd, buffer);
      if (n <= 0) return;
      const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
      std::int64_t expected = 0;
      first->compare_exchange_strong(expected, now);
      const auto since_first = std::chrono::steady_clock::duration(now - first->load());
      if (since_first >= 600ms && since_first < 1200ms) continue;
      for (std::ptrdiff_t i = 0; i < n; ++i) {
        if (buffer[i] == '\n' && !send_all(fd, "1\n")) return;
      }
    }
  };
}

TEST(LoadGenerator, AServerSilentForAWhileIsAnOutageInTheMiddle) {
  ScriptedServer server(silent_for_a_while());
  LoadConfig c = load(server.port());
  c.connections = 2;
  c.duration = from_seconds(2.0);
  c.timeout = from_seconds(0.2);  // the unanswered requests time out, the connections start again
  const Summary s = LoadGenerator(c).run();
  EXPECT_GT(s.errors.timeout, 0u);
  ASSERT_EQ(s.outage_count, 1u);
  const Outage& o = s.outages[0];
  EXPECT_FALSE(o.to_end);
  EXPECT_NEAR(to_seconds(o.at), 0.6, 0.3);
  EXPECT_GE(to_seconds(o.length), 0.55);  // the 0.6 s of silence, and up to a timeout more
  EXPECT_LE(to_seconds(o.length), 1.2);
  EXPECT_EQ(s.answering(), s.measured - o.length);
}

// A server that closes a connection with nothing in flight (an idle one)
// has not stopped answering: the connection reconnects, no outage.
TEST(LoadGenerator, AnIdleConnectionClosedIsNoOutage) {
  ScriptedServer closer([](int fd) {  // answers one request per connection, then hangs up
    char buffer[64];
    if (receive_some(fd, buffer) > 0) send_all(fd, "1\n");
  });
  LoadConfig c = load(closer.port());
  c.rate = 20;  // 50 ms between requests: the close comes between them
  c.duration = from_seconds(1.0);
  const Summary s = LoadGenerator(c).run();
  EXPECT_GT(s.requests, 10u);
  EXPECT_EQ(s.outage_count, 0u);
  EXPECT_EQ(s.errors.total(), 0u);
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
