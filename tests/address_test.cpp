// Covers address.h: the address forms users write, and clear rejections.
#include "fib/core/address.h"

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace fib {
namespace {

TEST(ParseHostPort, AcceptedForms) {
  HostPort a = parse_host_port("127.0.0.1:25000");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 25000);
  a = parse_host_port("[::1]:8080");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 8080);
  a = parse_host_port("localhost:1");
  EXPECT_EQ(a.host, "localhost");
  a = parse_host_port(":25000");
  EXPECT_EQ(a.host, "");
  EXPECT_EQ(a.port, 25000);
  EXPECT_EQ(parse_host_port("127.0.0.1:0").port, 0);
  EXPECT_EQ(parse_host_port("127.0.0.1:65535").port, 65535);
}

void expect_rejected(const std::string& text, const std::string& reason) {
  try {
    parse_host_port(text);
    ADD_FAILURE() << text << " was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(text), std::string::npos) << message;
    EXPECT_NE(message.find(reason), std::string::npos) << message;
  }
}

TEST(ParseHostPort, RejectsWithAReason) {
  expect_rejected("127.0.0.1", "missing ':PORT'");
  expect_rejected("127.0.0.1:", "missing port");
  expect_rejected("127.0.0.1:65536", "0 to 65535");
  expect_rejected("127.0.0.1:http", "0 to 65535");
  expect_rejected("127.0.0.1:-1", "0 to 65535");
  expect_rejected("::1:25000", "brackets");
  expect_rejected("[::1:25000", "missing ']'");
  expect_rejected("[::1]25000", "missing ':PORT'");
  expect_rejected("[]:25000", "empty IPv6");
}

TEST(FormatHostPort, BracketsIPv6) {
  EXPECT_EQ(format_host_port("::1", 80), "[::1]:80");
  EXPECT_EQ(format_host_port("127.0.0.1", 80), "127.0.0.1:80");
}

}  // namespace
}  // namespace fib
