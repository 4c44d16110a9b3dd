// Covers request_handler.h: parsing (junk, signs, spaces, leading zeros,
// overflow, the cap) and the reply text for each case.
#include "fib/core/request_handler.h"

#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "fib/core/protocol.h"

namespace fib {
namespace {

using Kind = Request::Kind;

TEST(ParseRequest, PlainNumbers) {
  EXPECT_EQ(parse_request("0", 45).kind, Kind::number);
  EXPECT_EQ(parse_request("30", 45).n, 30u);
  EXPECT_EQ(parse_request("45", 45).n, 45u);
}

TEST(ParseRequest, LeadingZerosAreAccepted) {
  const Request r = parse_request("0007", 45);
  EXPECT_EQ(r.kind, Kind::number);
  EXPECT_EQ(r.n, 7u);
}

TEST(ParseRequest, SurroundingSpacesAndTabsAreTrimmed) {
  EXPECT_EQ(parse_request("  12\t", 45).n, 12u);
  EXPECT_EQ(parse_request(" \t ", 45).kind, Kind::blank);
}

TEST(ParseRequest, Junk) {
  for (const char* junk : {"abc", "1 2", "1.5", "0x10", "1e3", "12a", "a12", "\x01", "١٢", "--1", "-"}) {
    EXPECT_EQ(parse_request(junk, 45).kind, Kind::not_a_number) << junk;
  }
}

TEST(ParseRequest, Signs) {
  EXPECT_EQ(parse_request("-5", 45).kind, Kind::negative);
  EXPECT_EQ(parse_request("-0", 45).kind, Kind::not_a_number);
  EXPECT_EQ(parse_request("+5", 45).kind, Kind::not_a_number);
}

TEST(ParseRequest, TooLargeAndOverflow) {
  EXPECT_EQ(parse_request("46", 45).kind, Kind::too_large);
  EXPECT_EQ(parse_request("18446744073709551615", 93).kind, Kind::too_large);
  EXPECT_EQ(parse_request("18446744073709551616", 93).kind, Kind::too_large);
  EXPECT_EQ(parse_request(std::string(200, '9'), 93).kind, Kind::too_large);
  EXPECT_EQ(parse_request("00000000000000000000000000093", 93).kind, Kind::number);
}

std::string reply(const RequestHandler& handler, std::string_view line) {
  ReplyBuffer out;
  handler.reply(line, out);
  return std::string(out.view());
}

TEST(RequestHandler, AnswersWithTheNumberAndANewline) {
  const RequestHandler handler(Algorithm::iterative, 93);
  EXPECT_EQ(reply(handler, "0"), "0\n");
  EXPECT_EQ(reply(handler, "1"), "1\n");
  EXPECT_EQ(reply(handler, "30"), "832040\n");
  EXPECT_EQ(reply(handler, "93"), "12200160415121876738\n");
}

TEST(RequestHandler, BlankLineGetsNoReply) {
  const RequestHandler handler(Algorithm::recursive, 45);
  ReplyBuffer out;
  EXPECT_FALSE(handler.reply("   ", out));
  EXPECT_TRUE(out.empty());
}

TEST(RequestHandler, ErrorLinesSayWhatWasWrongAndWhatIsAccepted) {
  const RequestHandler handler(Algorithm::recursive, 45);
  EXPECT_EQ(reply(handler, "abc"), "error: \"abc\" is not a number; send one whole number from 0 to 45 per line\n");
  EXPECT_EQ(reply(handler, "-3"), "error: \"-3\" is negative; send one whole number from 0 to 45 per line\n");
  EXPECT_EQ(reply(handler, "80"), "error: \"80\" is too large; the largest n this server accepts is 45\n");
}

TEST(RequestHandler, ErrorQuotesAreShortAndEscaped) {
  const RequestHandler handler(Algorithm::recursive, 45);
  const std::string text = reply(handler, std::string(300, '\xff'));
  EXPECT_TRUE(text.starts_with("error: \"\\x"));
  EXPECT_TRUE(text.ends_with(" per line\n"));
  EXPECT_LE(text.size(), ReplyBuffer::kMaxReplyBytes);
  EXPECT_EQ(text.find('\xff'), std::string::npos);
  EXPECT_EQ(text.find('\n'), text.size() - 1);  // exactly one line
}

TEST(RequestHandler, CapIsAtMost93) {
  EXPECT_EQ(RequestHandler(Algorithm::iterative, 1000).max_n(), 93u);
  EXPECT_EQ(RequestHandler(Algorithm::recursive, 20).max_n(), 20u);
}

TEST(RequestHandler, LineTooLongReply) {
  const RequestHandler handler(Algorithm::recursive, 45);
  ReplyBuffer out;
  handler.reply_line_too_long(out);
  EXPECT_EQ(out.view(), fmt::format("error: line longer than {} bytes; send one whole number from 0 to 45 per line\n",
                                    kMaxRequestLineBytes));
}

TEST(RequestHandler, StoppingAndIdleLines) {
  ReplyBuffer out;
  RequestHandler::reply_stopping(out);
  EXPECT_EQ(out.view(), "error: server stopping\n");
  out.clear();
  RequestHandler::reply_idle(out, std::chrono::milliseconds(300'000));
  EXPECT_EQ(out.view(), "error: idle timeout: no valid request for 300 s; closing the connection\n");
  out.clear();
  RequestHandler::reply_idle(out, std::chrono::milliseconds(1500));
  EXPECT_EQ(out.view(), "error: idle timeout: no valid request for 1.5 s; closing the connection\n");
}

TEST(RequestHandler, CancelledComputationRepliesNothing) {
  const RequestHandler handler(Algorithm::recursive, 45);
  const std::atomic<bool> flag{true};
  CancelFlag cancelled(&flag);
  ReplyBuffer out;
  EXPECT_FALSE(handler.respond(handler.parse("45"), "45", out, &cancelled));
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(handler.respond(handler.parse("x"), "x", out, &cancelled));  // errors need no computation
  EXPECT_TRUE(out.view().starts_with("error: \"x\" is not a number"));
}

TEST(ReplyBuffer, NearlyFullLeavesRoomForTheLongestReply) {
  const RequestHandler handler(Algorithm::iterative, 93);
  ReplyBuffer out;
  std::size_t replies = 0;
  while (!out.nearly_full()) {
    handler.reply(std::string(40, 'x'), out);
    ++replies;
  }
  EXPECT_GE(replies, 2u);
  const std::size_t before = out.view().size();
  handler.reply(std::string(300, '\xff'), out);  // the longest kind of reply still fits whole
  EXPECT_EQ(out.view().back(), '\n');
  EXPECT_GT(out.view().size(), before);
}

}  // namespace
}  // namespace fib
