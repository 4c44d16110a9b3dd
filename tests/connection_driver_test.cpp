// Covers the connection rules (src/server/rules/connection_driver.h) without
// sockets: the steps the driver asks for, and how the connection ends,
// whichever engine performs them.
#include "rules/connection_driver.h"

#include "rules/compute_gate.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fib/core/protocol.h"
#include "fib/core/request_handler.h"
#include "test_client.h"

namespace fib {
namespace {

using namespace std::chrono_literals;
using Do = ConnectionDriver::Do;
using Cut = ConnectionDriver::Cut;

class DriverTest : public ::testing::Test {
 protected:
  // Receives `bytes` for the driver's receive step.
  void receive(ConnectionDriver& driver, std::string_view bytes) {
    const ConnectionDriver::Step step = driver.next();
    ASSERT_EQ(step.what, Do::receive);
    ASSERT_GE(step.space.size(), bytes.size());
    std::memcpy(step.space.data(), bytes.data(), bytes.size());
    driver.received(bytes.size(), false, Clock::now());
  }
  // The bytes of the next step, a send, reported sent.
  std::string send(ConnectionDriver& driver) {
    const ConnectionDriver::Step step = driver.next();
    EXPECT_EQ(step.what, Do::send);
    std::string bytes(step.bytes);
    driver.sent();
    return bytes;
  }

  RequestHandler handler{Algorithm::iterative, 90};
  StopState stop;
  ComputeGate gate{0};
  ConnectionRules rules{.stop = &stop, .idle = {300ms}, .gate = &gate};
  ConnectionCounters counters;
};

TEST_F(DriverTest, AnswersEachRequestInOrderThenWaitsForMore) {
  Session session{handler, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  receive(driver, "10\nabc\n20\n");
  EXPECT_EQ(send(driver), "55\nerror: \"abc\" is not a number; send one whole number from 0 to 90 per line\n6765\n");
  EXPECT_EQ(driver.next().what, Do::receive);
  EXPECT_EQ(driver.result().replies, 3U);
  EXPECT_EQ(driver.result().errors, 1U);
  EXPECT_EQ(counters.answers.load(), 2U);
}

TEST_F(DriverTest, EndOfStreamAnswersTheLastPartialLineAndEndsClosedWithoutAGoodbye) {
  Session session{handler, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  receive(driver, "7\n8");
  driver.next();  // the send of "13\n"; the partial "8" waits for more
  driver.sent();
  receive(driver, "");
  EXPECT_EQ(send(driver), "21\n");
  EXPECT_EQ(driver.next().what, Do::done);
  EXPECT_EQ(driver.result().end, End::closed);
}

TEST_F(DriverTest, AStopBeforeTheNextReceiveSaysSoAndClosesGracefullyUntilTheStopsLimit) {
  Session session{handler, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  receive(driver, "3\n");
  EXPECT_EQ(send(driver), "2\n");
  const Clock::time_point answer_by = Clock::now() + 1s;
  stop.begin(answer_by);
  EXPECT_EQ(send(driver), std::string(kStoppingReply));
  const ConnectionDriver::Step close = driver.next();
  EXPECT_EQ(close.what, Do::close);
  EXPECT_EQ(close.limits.until, answer_by + StopState::kGrace);  // the grace past the shutdown timeout
  EXPECT_EQ(driver.next().what, Do::done);
  EXPECT_EQ(driver.result().end, End::stopped);
  EXPECT_EQ(driver.result().replies, 1U);  // the stopping line is no reply
}

TEST_F(DriverTest, ReceiveDeadlineIsTheIdleTimeoutAfterTheLastValidRequest) {
  Session session{handler, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  receive(driver, "4\n");
  const Clock::time_point before = Clock::now();
  send(driver);
  const ConnectionDriver::Step wait = driver.next();
  ASSERT_EQ(wait.what, Do::receive);
  EXPECT_GE(wait.deadline, before + rules.idle.timeout);
  EXPECT_LE(wait.deadline, Clock::now() + rules.idle.timeout);
  // Error lines do not move it.
  receive(driver, "x\n");
  send(driver);
  EXPECT_EQ(driver.next().deadline, wait.deadline);
}

TEST_F(DriverTest, AReceivePastItsDeadlineSaysIdleAndCloses) {
  Session session{handler, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  driver.next();
  driver.receive_cut(Cut::deadline);
  EXPECT_EQ(send(driver), "error: idle timeout: no valid request for 0.3 s; closing the connection\n");
  EXPECT_EQ(driver.next().what, Do::close);
  EXPECT_EQ(driver.next().what, Do::done);
  EXPECT_EQ(driver.result().end, End::idle);
}

TEST_F(DriverTest, ASendPastItsDeadlineEndsStalledWithNothingMoreToSend) {
  Session session{handler, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  receive(driver, "5\n");
  const ConnectionDriver::Step step = driver.next();
  ASSERT_EQ(step.what, Do::send);
  EXPECT_NE(step.deadline, Clock::time_point::max());
  driver.send_cut(Cut::deadline);
  EXPECT_EQ(driver.next().what, Do::done);
  EXPECT_EQ(driver.result().end, End::stalled);
  EXPECT_EQ(counters.answers.load(), 0U);  // never went out
}

TEST_F(DriverTest, ALineTooLongGetsItsErrorLineThenAGracefulClose) {
  Session session{handler, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  const std::string line(kMaxRequestLineBytes + 1, '1');
  for (std::size_t at = 0; at < line.size();) {
    const ConnectionDriver::Step step = driver.next();
    ASSERT_EQ(step.what, Do::receive);
    const std::size_t n = std::min(step.space.size(), line.size() - at);
    std::memcpy(step.space.data(), line.data() + at, n);
    driver.received(n, false, Clock::now());
    at += n;
  }
  EXPECT_TRUE(send(driver).starts_with(fmt::format("error: line longer than {} bytes", kMaxRequestLineBytes)));
  EXPECT_EQ(driver.next().what, Do::close);
  EXPECT_EQ(driver.next().what, Do::done);
  EXPECT_EQ(driver.result().end, End::line_too_long);
}

TEST_F(DriverTest, RepliesWaitingAreSentBeforeASlowRequestIsComputed) {
  RequestHandler recursive(Algorithm::recursive, 45);
  Session session{recursive, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  receive(driver, fmt::format("1\n{}\n", kSlowRecursiveN));
  EXPECT_EQ(send(driver), "1\n");
  const ConnectionDriver::Step compute = driver.next();
  ASSERT_EQ(compute.what, Do::compute);
  driver.computed(compute_slow(*compute.session, -1, rules));
  EXPECT_EQ(send(driver), fmt::format("{}\n", *fib::fib(Algorithm::iterative, kSlowRecursiveN)));
}

TEST_F(DriverTest, AClientGoneDuringAComputationEndsTheConnectionAsFailed) {
  RequestHandler recursive(Algorithm::recursive, 45);
  Session session{recursive, &stop.abandon_flag()};
  ConnectionDriver driver(rules, counters, session);
  receive(driver, fmt::format("{}\n", kSlowRecursiveN));
  ASSERT_EQ(driver.next().what, Do::compute);
  driver.computed(Computed::client_gone);
  EXPECT_EQ(driver.next().what, Do::done);
  EXPECT_EQ(driver.result().end, End::failed);
}

TEST_F(DriverTest, WithSparesAConnectionAtRestHoldsNoSessionAndGoesOnWhereItLeftOff) {
  SpareSessions spares(handler, stop);
  ConnectionDriver driver(rules, counters, spares);
  EXPECT_TRUE(driver.at_rest());
  receive(driver, "6\n");
  EXPECT_FALSE(driver.at_rest());
  send(driver);
  const ConnectionDriver::Step step = driver.next();
  EXPECT_EQ(step.what, Do::receive);
  EXPECT_TRUE(driver.at_rest());
  EXPECT_LE(step.space.size(), 64U);  // a few bytes of the driver's own
  receive(driver, "7\n");
  EXPECT_EQ(send(driver), "13\n");
  EXPECT_EQ(driver.result().replies, 2U);
}

// Turns are counted whatever the limit: with none, every computation runs
// at once and each is counted while it holds its turn.
TEST(ComputeGate, WithNoLimitEveryTurnIsGivenAndCounted) {
  ComputeGate gate{0};
  CancelFlag never(nullptr);
  {
    const ComputeGate::Turn first = gate.enter(never);
    const ComputeGate::Turn second = gate.enter(never);
    const ComputeGate::Turn third = gate.enter(never);
    EXPECT_EQ(gate.running(), 3U);
    EXPECT_EQ(gate.waiting(), 0U);
  }
  EXPECT_EQ(gate.running(), 0U);
}

// With a limit of one, a second computation waits for the turn the first
// gives back, and one whose wait is cancelled leaves the queue.
TEST(ComputeGate, WithALimitTheNextInLineTakesTheTurnGivenBack) {
  ComputeGate gate{1};
  CancelFlag never(nullptr);
  std::optional<ComputeGate::Turn> first(gate.enter(never));
  std::atomic<bool> admitted{false};
  std::thread second([&] {
    const ComputeGate::Turn turn = gate.enter(never);
    admitted = true;
  });
  ASSERT_TRUE(testing::eventually([&] { return gate.waiting() == 1; })) << "the second computation waits";
  EXPECT_EQ(gate.running(), 1U);
  EXPECT_FALSE(admitted);
  first.reset();
  second.join();
  EXPECT_TRUE(admitted);
  EXPECT_EQ(gate.running(), 0U);
  EXPECT_EQ(gate.waiting(), 0U);

  std::atomic<bool> cancel{true};
  CancelFlag cancelled(&cancel);
  const ComputeGate::Turn held = gate.enter(never);
  const ComputeGate::Turn none = gate.enter(cancelled);  // cancelled at the start: no wait, no turn
  EXPECT_EQ(gate.running(), 1U);
  EXPECT_EQ(gate.waiting(), 0U);
}

}  // namespace
}  // namespace fib
