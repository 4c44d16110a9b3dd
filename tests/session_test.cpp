// Covers session.h: each protocol rule of a connection, driven without
// sockets.
#include "fib/core/session.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fib/core/protocol.h"

namespace fib {
namespace {

using Next = Session::Next;

// A session fed by hand: what a connection loop does, minus the sockets.
class Driver {
 public:
  explicit Driver(Algorithm algorithm = Algorithm::iterative, const std::atomic<bool>* cancel = nullptr)
      : handler_(algorithm, default_max_n(algorithm)), session_(handler_, cancel) {}

  Session& session() { return session_; }

  // Receives `bytes` in one read, or as much of it as there is room for
  // (consumed() says how much); "" is end of stream. Then advances.
  Next receive(std::string_view bytes, bool more_waiting = false) {
    const std::span<char> space = session_.free_space();
    consumed_ = std::min(bytes.size(), space.size());
    std::memcpy(space.data(), bytes.data(), consumed_);
    session_.received(consumed_);
    return session_.advance([&] {
      ++waiting_asked_;
      return more_waiting;
    });
  }
  Next advance() {
    return session_.advance([] { return false; });
  }
  // Takes what the session has to send, as sent.
  std::string send() {
    std::string out(session_.output());
    session_.sent();
    return out;
  }
  int waiting_asked() const { return waiting_asked_; }
  std::size_t consumed() const { return consumed_; }

 private:
  RequestHandler handler_;
  Session session_;
  int waiting_asked_ = 0;
  std::size_t consumed_ = 0;
};

TEST(Session, SentReturnsTheRepliesItSentByKind) {
  Driver d;
  EXPECT_EQ(d.receive("5\nabc\n-3\n99\n\n8\n"), Next::receive);
  EXPECT_FALSE(d.session().output().empty());
  const ReplyCounts sent = d.session().sent();
  EXPECT_EQ(sent.answers, 2u);
  EXPECT_EQ(sent.errors[static_cast<std::size_t>(ErrorKind::not_a_number)], 1u);
  EXPECT_EQ(sent.errors[static_cast<std::size_t>(ErrorKind::negative)], 1u);
  EXPECT_EQ(sent.errors[static_cast<std::size_t>(ErrorKind::too_large)], 1u);
  EXPECT_EQ(sent.errors[static_cast<std::size_t>(ErrorKind::line_too_long)], 0u);
  EXPECT_EQ(sent.replies(), 5u);  // the blank line got none
  EXPECT_EQ(d.session().requests(), 5u);
  EXPECT_EQ(d.session().errors(), 3u);
  // What was counted once is not counted again.
  EXPECT_EQ(d.session().sent().replies(), 0u);
  const std::string long_line(kMaxRequestLineBytes + 10, '7');
  Next next = Next::receive;
  for (std::size_t at = 0; at < long_line.size() && next == Next::receive; at += d.consumed())
    next = d.receive(std::string_view(long_line).substr(at, 400), true);
  EXPECT_EQ(next, Next::close_gracefully);
  EXPECT_EQ(d.session().sent().errors[static_cast<std::size_t>(ErrorKind::line_too_long)], 1u);
}

TEST(ReplyCounts, AddUpByKind) {
  ReplyCounts total;
  ReplyCounts some;
  some.answers = 3;
  some.count(ErrorKind::too_large);
  some.count(ErrorKind::too_large);
  total += some;
  total += some;
  EXPECT_EQ(total.answers, 6u);
  EXPECT_EQ(total.errors[static_cast<std::size_t>(ErrorKind::too_large)], 4u);
  EXPECT_EQ(total.error_lines(), 4u);
  EXPECT_EQ(total.replies(), 10u);
  EXPECT_EQ(to_string(ErrorKind::not_a_number), "not_a_number");
  EXPECT_EQ(to_string(ErrorKind::line_too_long), "line_too_long");
}

// A time on a bound belongs to that bound's bucket ("le", as Prometheus has it).
TEST(ServiceTimes, BucketsAreUpperBoundsInclusive) {
  using std::chrono::microseconds;
  using std::chrono::nanoseconds;
  EXPECT_EQ(service_time_bucket(nanoseconds{0}), 0u);
  EXPECT_EQ(service_time_bucket(microseconds{10}), 0u);
  EXPECT_EQ(service_time_bucket(microseconds{10} + nanoseconds{1}), 1u);
  EXPECT_EQ(service_time_bucket(microseconds{2500}), 7u);
  EXPECT_EQ(service_time_bucket(std::chrono::seconds{10}), kServiceTimeBounds.size() - 1);
  EXPECT_EQ(service_time_bucket(std::chrono::seconds{11}), kServiceTimeBounds.size());
  EXPECT_EQ(kServiceTimeBuckets, 20u);
  ServiceTimes times;
  times.buckets[0] = 2;
  times.buckets[19] = 1;
  times.sum_ns = 5;
  ServiceTimes more = times;
  more += times;
  EXPECT_EQ(more.count(), 6u);
  EXPECT_EQ(more.sum_ns, 10u);
}

TEST(Session, PipelinedLinesAreAnsweredInOrder) {
  Driver d;
  EXPECT_EQ(d.receive("1\n2\n10\n"), Next::receive);
  EXPECT_EQ(d.send(), "1\n1\n55\n");
  EXPECT_EQ(d.session().requests(), 3u);
}

TEST(Session, ALineSplitOverReadsIsOneRequest) {
  Driver d;
  EXPECT_EQ(d.receive("1\n3"), Next::receive);  // a newline was seen: "3" is a line still arriving
  EXPECT_EQ(d.send(), "1\n");
  EXPECT_EQ(d.receive("0\n"), Next::receive);
  EXPECT_EQ(d.send(), "832040\n");
}

TEST(Session, UnterminatedRequestIsTakenOnceNothingMoreIsWaiting) {
  Driver d;
  EXPECT_EQ(d.receive("3", /*more_waiting=*/true), Next::receive);
  EXPECT_EQ(d.send(), "");  // more is on its way: not yet a request
  EXPECT_EQ(d.receive("0", /*more_waiting=*/false), Next::receive);
  EXPECT_EQ(d.send(), "832040\n");
  EXPECT_EQ(d.receive("7"), Next::receive);
  EXPECT_EQ(d.send(), "13\n");
}

TEST(Session, MoreWaitingIsAskedOnlyWhenAPartialMayBeARequest) {
  Driver d;
  d.receive("1\n2\n");
  EXPECT_EQ(d.waiting_asked(), 0);
  d.receive("3");  // after a newline a partial is a line still arriving
  EXPECT_EQ(d.waiting_asked(), 0);
  Driver fresh;
  fresh.receive("3");
  EXPECT_EQ(fresh.waiting_asked(), 1);
}

TEST(Session, BlankLinesGetNoReply) {
  Driver d;
  EXPECT_EQ(d.receive("\n \n\t\r\n5\n"), Next::receive);
  EXPECT_EQ(d.send(), "5\n");
  EXPECT_EQ(d.session().requests(), 1u);
}

TEST(Session, BadRequestGetsAnErrorLineAndTheConnectionGoesOn) {
  Driver d;
  EXPECT_EQ(d.receive("abc\n-3\n999\n4\n"), Next::receive);
  const std::string out = d.send();
  EXPECT_NE(out.find("error: \"abc\" is not a number"), std::string::npos) << out;
  EXPECT_NE(out.find("error: \"-3\" is negative"), std::string::npos) << out;
  EXPECT_NE(out.find("error: \"999\" is too large"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\n3\n")) << out;
  EXPECT_EQ(d.session().requests(), 4u);
  EXPECT_EQ(d.session().errors(), 3u);
}

TEST(Session, RepliesWaitingAreSentBeforeASlowRequest) {
  Driver d(Algorithm::recursive);
  EXPECT_EQ(d.receive("2\n30\n3\n"), Next::compute);
  EXPECT_EQ(d.send(), "1\n");  // before fib(30) starts
  EXPECT_TRUE(d.session().compute());
  EXPECT_EQ(d.advance(), Next::receive);
  EXPECT_EQ(d.send(), "832040\n2\n");
}

TEST(Session, AFullReplyBufferIsSentBeforeMoreReplies) {
  Driver d;
  std::string requests;
  for (int i = 0; i < 100; ++i) requests += "93\n";  // 21 bytes a reply: more than the buffer holds
  Next next = d.receive(requests);
  std::string out;
  int sends = 0;
  while (next == Next::send) {
    out += d.send();
    ++sends;
    next = d.advance();
  }
  EXPECT_EQ(next, Next::receive);
  out += d.send();
  EXPECT_GT(sends, 0);
  EXPECT_EQ(out.size(), 100u * 21);
  EXPECT_EQ(d.session().requests(), 100u);
}

TEST(Session, OverLongLineGetsAnErrorThenACloseGracefully) {
  Driver d;
  const std::string long_line(kMaxRequestLineBytes + 10, '7');
  Next next = Next::receive;
  for (std::size_t at = 0; at < long_line.size() && next == Next::receive; at += d.consumed())
    next = d.receive(std::string_view(long_line).substr(at, 400), true);
  EXPECT_EQ(next, Next::close_gracefully);
  EXPECT_TRUE(d.send().starts_with(fmt::format("error: line longer than {} bytes", kMaxRequestLineBytes)));
  EXPECT_EQ(d.session().errors(), 1u);
  EXPECT_EQ(d.advance(), Next::close_gracefully);  // it stays closing
}

TEST(Session, EndOfStreamAnswersAPartialLineThenCloses) {
  Driver d;
  EXPECT_EQ(d.receive("1\n8"), Next::receive);
  EXPECT_EQ(d.send(), "1\n");
  EXPECT_EQ(d.receive(""), Next::close);
  EXPECT_EQ(d.send(), "21\n");
}

TEST(Session, OnlyValidRequestsCountForTheIdleRule) {
  Driver d;
  d.receive("x\n\n");
  d.send();
  EXPECT_FALSE(d.session().take_valid_request());
  d.receive("1\n");
  d.send();
  EXPECT_TRUE(d.session().take_valid_request());
  EXPECT_FALSE(d.session().take_valid_request());  // once per request
}

TEST(Session, CancelGivesUpRequestsNotAnswered) {
  std::atomic<bool> cancel{false};
  Driver d(Algorithm::iterative, &cancel);
  EXPECT_EQ(d.receive("1\n"), Next::receive);
  EXPECT_EQ(d.send(), "1\n");
  cancel = true;
  EXPECT_EQ(d.receive("2\n3\n"), Next::given_up);
  EXPECT_EQ(d.send(), "");
}

TEST(Session, CancelStopsASlowComputation) {
  std::atomic<bool> cancel{false};
  Driver d(Algorithm::recursive, &cancel);
  EXPECT_EQ(d.receive("45\n"), Next::compute);
  cancel = true;
  EXPECT_FALSE(d.session().compute());
  EXPECT_EQ(d.advance(), Next::given_up);
  EXPECT_EQ(d.send(), "");
}

// The connection's own reason to give up (its client has gone), asked
// alongside the stop's flag: the computation ends as soon as it says so.
TEST(Session, ConnectionsOwnCancelStopsASlowComputation) {
  class AfterCalls final : public Cancel {
   public:
    explicit AfterCalls(int calls) : left_(calls) {}
    bool requested() override { return --left_ < 0; }
    int left() const { return left_; }

   private:
    int left_;
  };
  Driver d(Algorithm::recursive);
  EXPECT_EQ(d.receive("45\n"), Next::compute);
  AfterCalls gone(100);  // fib(45) asks thousands of times
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(d.session().compute(&gone));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
  EXPECT_EQ(gone.left(), -1);  // asked once more after the last "go on", then never again
  EXPECT_EQ(d.advance(), Next::given_up);

  Driver answered(Algorithm::recursive);
  EXPECT_EQ(answered.receive("32\n"), Next::compute);
  AfterCalls never(1'000'000);
  EXPECT_TRUE(answered.session().compute(&never));
  EXPECT_EQ(answered.advance(), Next::receive);
  EXPECT_EQ(answered.send(), "2178309\n");
}

TEST(Session, LastLinesAreNotCountedAsReplies) {
  Driver d;
  d.receive("1\n");
  d.send();
  ASSERT_TRUE(d.session().room_for_last_line());
  d.session().say_stopping();
  EXPECT_EQ(d.send(), "error: server stopping\n");
  d.session().say_idle(std::chrono::milliseconds(2000));
  EXPECT_EQ(d.send(), "error: idle timeout: no valid request for 2 s; closing the connection\n");
  EXPECT_EQ(d.session().requests(), 1u);
  EXPECT_EQ(d.session().errors(), 0u);
}

TEST(Session, DroppedOutputIsNotCounted) {
  Driver d;
  d.receive("1\n2\n");
  d.session().drop_output();
  EXPECT_EQ(d.session().output(), "");
  EXPECT_EQ(d.session().requests(), 0u);
}

// At rest only once everything received is answered and sent.
TEST(Session, AtRestOnceEverythingReceivedIsAnsweredAndSent) {
  Driver d;
  EXPECT_TRUE(d.session().at_rest());
  d.receive("1\n2");  // "2" is a line still arriving
  EXPECT_FALSE(d.session().at_rest());
  d.send();
  EXPECT_FALSE(d.session().at_rest());
  d.receive("\n");
  EXPECT_FALSE(d.session().at_rest());  // its reply is not sent yet
  d.send();
  EXPECT_TRUE(d.session().at_rest());
  d.receive("");  // end of stream: the connection does not go on
  EXPECT_FALSE(d.session().at_rest());
}

// A connection's rest taken from one session and resumed in another: the
// counts go on, and so does the rule that once a newline was seen a partial
// line is not a request.
TEST(Session, RestResumedInAnotherSessionCarriesOn) {
  Driver first;
  first.receive("1\nabc\n");
  first.send();
  ASSERT_TRUE(first.session().at_rest());
  const Session::Rest rest = first.session().rest();

  Driver second;
  second.receive("5\n");  // the second session served another connection first
  second.send();
  second.session().resume(rest);
  EXPECT_EQ(second.session().requests(), 2u);
  EXPECT_EQ(second.session().errors(), 1u);
  EXPECT_EQ(second.receive("7"), Next::receive);
  EXPECT_EQ(second.send(), "") << "a newline was seen: \"7\" is a line still arriving";
  EXPECT_EQ(second.waiting_asked(), 0);
  second.receive("\n");
  EXPECT_EQ(second.send(), "13\n");
  EXPECT_EQ(second.session().requests(), 3u);

  Driver fresh;  // a connection that never sent a newline keeps the unterminated rule
  fresh.receive("3");
  ASSERT_EQ(fresh.send(), "2\n");
  const Session::Rest unterminated = fresh.session().rest();
  Driver other;
  other.session().resume(unterminated);
  other.receive("4");
  EXPECT_EQ(other.send(), "3\n");
}

}  // namespace
}  // namespace fib
