// What only the coroutine mode needs: slow requests go to the workers, so a
// loop keeps serving while they compute; answers on one connection stay in
// order; a stop gives up computations still running on the workers. In
// process, over real sockets.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fib/core/fib.h"
#include "test_client.h"

namespace fib::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string answer(unsigned n) { return std::to_string(fib_iterative(n)); }

// One loop and one worker: were fib(45) computed on the loop, the other
// connection would get nothing for seconds.
TEST(Coroutine, FastAnswersKeepComingWhileAWorkerComputesFib45) {
  RunningServer running({.mode = Mode::coroutine, .shutdown_timeout = 100ms, .threads = 1, .workers = 1});
  Client slow(running.port());
  Client fast(running.port());
  slow.send("45\n");
  ASSERT_TRUE(eventually([&] { return running.server().stats().computing == 1; })) << "the worker computes fib(45)";
  const auto started = Clock::now();
  for (int i = 0; i < 500; ++i) {
    fast.send("1\n");
    ASSERT_EQ(fast.read_line(2s), "1") << "request " << i;
  }
  EXPECT_LT(Clock::now() - started, 5s);
  EXPECT_FALSE(slow.readable_within(0ms)) << "fib(45) answered before 500 fib(1) on another connection";
  running.stop_and_join();  // past the 100 ms shutdown timeout, fib(45) is given up
  EXPECT_TRUE(slow.read_stopping_then_eof());
}

// Slow and fast requests pipelined in one write: answered in the order sent,
// though the slow ones are computed elsewhere.
TEST(Coroutine, PipelinedSlowAndFastRequestsAreAnsweredInOrder) {
  RunningServer running({.mode = Mode::coroutine});
  Client client(running.port());
  const std::vector<unsigned> asked = {31, 1, 30, 2, 0, 32, 3, 30, 30, 4};
  std::string requests;
  for (const unsigned n : asked) requests += std::to_string(n) + "\n";
  client.send(requests);
  const std::vector<std::string> lines = client.read_lines(asked.size(), 60s);
  ASSERT_EQ(lines.size(), asked.size());
  for (std::size_t i = 0; i < asked.size(); ++i) EXPECT_EQ(lines[i], answer(asked[i])) << "answer " << i;
}

// More fib(45) than workers, some running and some queued, and an idle
// connection: a stop with a 200 ms timeout gives them all up, tells every
// client, and returns soon after the timeout.
TEST(Coroutine, StopWhileWorkersComputeIsBoundedAndTellsEveryClient) {
  RunningServer running({.mode = Mode::coroutine, .shutdown_timeout = 200ms, .threads = 2, .workers = 2});
  std::vector<std::unique_ptr<Client>> busy;
  for (int i = 0; i < 6; ++i) {
    busy.push_back(std::make_unique<Client>(running.port()));
    busy.back()->send("1\n45\n45\n");
    ASSERT_EQ(busy.back()->read_line(), "1");
  }
  Client idle(running.port());
  idle.send("2\n");
  ASSERT_EQ(idle.read_line(), "1");
  // Each connection's first fib(45) handed to the workers (its second waits
  // behind it), two of them computing.
  const auto all_handed_over = [&] {
    const ServerStats stats = running.server().stats();
    return stats.computing == 2 && stats.loops->at_workers == 6;
  };
  ASSERT_TRUE(eventually(all_handed_over)) << "a fib(45) per connection on the workers, two computing";
  const auto started = Clock::now();
  running.stop_and_join();
  const auto took = Clock::now() - started;
  EXPECT_LT(took, 2s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  for (auto& client : busy) EXPECT_TRUE(client->read_stopping_then_eof(0ms));
  EXPECT_TRUE(idle.read_stopping_then_eof(0ms));
  const ServerStats stats = running.server().stats();
  EXPECT_EQ(stats.open, 0u);
  EXPECT_EQ(stats.replies.replies(), 7u);  // the fib(1)s and the fib(2): nothing given up counts
}

// A connection with nothing pending is parked after two sweeps (a tenth of
// the idle timeout here): its coroutine and session go, its state stays. It
// goes on where it left off: counts, the rule that after a newline a
// partial line is not a request, the idle clock.
TEST(Coroutine, ParkedConnectionGoesOnWhereItLeftOff) {
  RunningServer running({.mode = Mode::coroutine, .idle_timeout = 400ms});
  Client lines(running.port());
  Client unterminated(running.port());
  lines.send("1\n");
  ASSERT_EQ(lines.read_line(), "1");
  unterminated.send("3");
  ASSERT_EQ(unterminated.read_line(), "2");
  const auto parked = [&] { return running.server().stats().loops->parked == 2; };
  ASSERT_TRUE(eventually(parked)) << "both at rest for two sweeps, so parked";
  lines.send("7");
  EXPECT_FALSE(lines.readable_within(100ms)) << "after a newline, \"7\" is a line still arriving";
  lines.send("\n");
  EXPECT_EQ(lines.read_line(), "13");
  unterminated.send("4");  // never a newline: a request of its own
  EXPECT_EQ(unterminated.read_line(), "3");
  // Counted once sent: the client may read an answer a moment before.
  EXPECT_TRUE(eventually([&] { return running.server().stats().replies.replies() == 4; }));
  EXPECT_EQ(running.server().stats().replies.replies(), 4u);
  // Parked again, then idle: told so and closed, 400 ms after the last valid request.
  const auto started = Clock::now();
  EXPECT_EQ(lines.read_line(2s), "error: idle timeout: no valid request for 0.4 s; closing the connection");
  EXPECT_TRUE(lines.read_eof());
  EXPECT_LT(Clock::now() - started, 1s);
}

}  // namespace
}  // namespace fib::testing
