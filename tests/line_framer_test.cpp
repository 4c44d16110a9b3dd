// Covers line_framer.h: pipelined lines, lines split over reads, CRLF,
// unterminated requests, empty lines and over-long input.
#include "fib/core/line_framer.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace fib {
namespace {

// Feeds `data` in as many reads as the framer's free space takes, as a
// connection does, and returns every complete line.
std::vector<std::string> feed(LineFramer& framer, std::string_view data) {
  std::vector<std::string> lines;
  while (!data.empty()) {
    const std::span<char> space = framer.free_space();
    if (space.empty()) break;  // line too long
    const std::size_t n = std::min(space.size(), data.size());
    std::memcpy(space.data(), data.data(), n);
    framer.commit(n);
    data.remove_prefix(n);
    while (const auto line = framer.next_line()) lines.emplace_back(*line);
  }
  return lines;
}

TEST(LineFramer, PipelinedLinesInOneReadComeOutInOrder) {
  LineFramer framer(kMaxRequestLineBytes);
  EXPECT_EQ(feed(framer, "1\n2\n30\n"), (std::vector<std::string>{"1", "2", "30"}));
  EXPECT_FALSE(framer.has_partial());
}

TEST(LineFramer, LineSplitOverSeveralReads) {
  LineFramer framer(kMaxRequestLineBytes);
  EXPECT_TRUE(feed(framer, "1").empty());
  EXPECT_TRUE(framer.has_partial());
  EXPECT_TRUE(feed(framer, "2").empty());
  EXPECT_EQ(feed(framer, "3\n4"), std::vector<std::string>{"123"});
  EXPECT_EQ(feed(framer, "5\n"), std::vector<std::string>{"45"});
  EXPECT_FALSE(framer.has_partial());
}

TEST(LineFramer, CarriageReturnBeforeNewlineIsDropped) {
  LineFramer framer(kMaxRequestLineBytes);
  EXPECT_EQ(feed(framer, "7\r\n8\n"), (std::vector<std::string>{"7", "8"}));
  // The '\r' and '\n' may arrive in different reads.
  EXPECT_TRUE(feed(framer, "9\r").empty());
  EXPECT_EQ(feed(framer, "\n"), std::vector<std::string>{"9"});
}

TEST(LineFramer, EmptyLinesAreSkipped) {
  LineFramer framer(kMaxRequestLineBytes);
  EXPECT_EQ(feed(framer, "\n\r\n1\n\n\n2\n"), (std::vector<std::string>{"1", "2"}));
}

TEST(LineFramer, UnterminatedRequestIsTakenWhole) {
  LineFramer framer(kMaxRequestLineBytes);
  EXPECT_TRUE(feed(framer, "30").empty());
  ASSERT_TRUE(framer.has_partial());
  EXPECT_EQ(framer.take_partial(), "30");
  EXPECT_FALSE(framer.has_partial());
  // The next request starts afresh.
  EXPECT_EQ(feed(framer, "5\n"), std::vector<std::string>{"5"});
}

TEST(LineFramer, ShortPartialMayBeARequestUntilTheClientSendsANewline) {
  LineFramer framer(kMaxRequestLineBytes);
  feed(framer, "30");
  EXPECT_TRUE(framer.partial_may_be_request());
  framer.take_partial();
  feed(framer, "1\n2");
  EXPECT_FALSE(framer.partial_may_be_request());  // this client frames with newlines
  EXPECT_EQ(feed(framer, "3\n"), std::vector<std::string>{"23"});
}

// A client that cannot promise a line per write sends an empty line first.
TEST(LineFramer, AnEmptyFirstLineMakesEveryPartialALineStillArriving) {
  LineFramer framer(kMaxRequestLineBytes);
  EXPECT_TRUE(feed(framer, "\n2").empty());
  EXPECT_FALSE(framer.partial_may_be_request());
  EXPECT_EQ(feed(framer, "0\n"), std::vector<std::string>{"20"});
}

TEST(LineFramer, LongPartialIsALineStillArriving) {
  LineFramer framer(kMaxRequestLineBytes);
  feed(framer, std::string(kMaxUnterminatedRequestBytes, '1'));
  EXPECT_TRUE(framer.partial_may_be_request());
  feed(framer, "1");
  EXPECT_FALSE(framer.partial_may_be_request());
  EXPECT_TRUE(framer.has_partial());
}

TEST(LineFramer, TakePartialDropsTrailingCarriageReturn) {
  LineFramer framer(kMaxRequestLineBytes);
  feed(framer, "1\n12\r");
  EXPECT_EQ(framer.take_partial(), "12");
}

TEST(LineFramer, BufferIsReusedAcrossManyLines) {
  LineFramer framer(kMaxRequestLineBytes);
  std::size_t total = 0;
  for (int i = 0; i < 10000; ++i) total += feed(framer, "123456789\n").size();
  EXPECT_EQ(total, 10000u);
}

TEST(LineFramer, StartsSmallAndGrowsForALongLine) {
  LineFramer framer(kMaxRequestLineBytes);
  EXPECT_EQ(framer.free_space().size(), LineFramer::kSmallBytes);
  const std::string line(3000, '5');  // longer than the small buffer, within the limit
  EXPECT_EQ(feed(framer, line + "\n1\n"), (std::vector<std::string>{line, "1"}));
  EXPECT_FALSE(framer.line_too_long());
}

TEST(LineFramer, LongestAcceptedLineFits) {
  LineFramer framer(kMaxRequestLineBytes);
  const std::string line(kMaxRequestLineBytes, '7');
  const auto lines = feed(framer, line + "\n");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], line);
  EXPECT_FALSE(framer.line_too_long());
}

TEST(LineFramer, OverLongLineIsReportedAndSpaceRunsOut) {
  LineFramer framer(kMaxRequestLineBytes);
  feed(framer, std::string(1000, '1'));
  EXPECT_FALSE(framer.line_too_long());
  // Keep feeding a line with no newline until the buffer is full.
  while (!framer.free_space().empty()) {
    const std::size_t room = framer.free_space().size();
    feed(framer, std::string(std::min<std::size_t>(room, 700), '1'));
  }
  EXPECT_TRUE(framer.line_too_long());
}

TEST(LineFramer, CompleteLinesBeforeAnOverLongOneAreStillReturned) {
  LineFramer framer(kMaxRequestLineBytes);
  std::string data = "1\n2\n" + std::string(kMaxRequestLineBytes - 3, '9');
  EXPECT_EQ(feed(framer, data), (std::vector<std::string>{"1", "2"}));
  EXPECT_FALSE(framer.line_too_long());
  // Space freed by the two lines is handed back for the rest.
  EXPECT_EQ(framer.free_space().size(), 4u);
}

}  // namespace
}  // namespace fib
