// ConnectionBook over real sockets: a connection an engine admitted and then
// cannot serve is told why, in a line of its own, and counted by its reason.
#include "rules/connection_book.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "fib/net/socket.h"
#include "fib/server/stats.h"

namespace fib {
namespace {

// What the client end of a turned-away connection reads, up to end of stream.
std::string read_all(int fd) {
  std::string text;
  char buffer[256];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  return text;
}

TEST(ConnectionBook, ATurnedAwayConnectionIsToldWhyAndCountedByItsReason) {
  ConnectionBook book;
  book.set_limit(10);
  const std::pair<Refusal, std::string> cases[] = {
      {Refusal::no_thread, "error: server cannot start a thread for this connection; try again later\n"},
      {Refusal::no_memory, "error: server out of memory for this connection; try again later\n"},
      {Refusal::no_memory, "error: server out of memory for this connection; try again later\n"}};
  for (const auto& [reason, line] : cases) {
    int ends[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, ends), 0);
    const Fd server(ends[0]), client(ends[1]);
    Ticket ticket = book.admit(server.get(), Endpoint{});
    ASSERT_TRUE(ticket);
    EXPECT_EQ(book.open(), 1u);
    ticket.turn_away(server.get(), reason, "what failed");
    EXPECT_FALSE(ticket);
    EXPECT_EQ(book.open(), 0u);
    EXPECT_EQ(read_all(client.get()), line);  // the line, then end of stream (the server's side shut)
  }
  ServerStats stats;
  book.add_to(stats);
  EXPECT_EQ(stats.accepted, 3u);
  EXPECT_EQ(stats.refused[static_cast<std::size_t>(Refusal::over_limit)], 0u);
  EXPECT_EQ(stats.refused[static_cast<std::size_t>(Refusal::no_thread)], 1u);
  EXPECT_EQ(stats.refused[static_cast<std::size_t>(Refusal::no_memory)], 2u);
}

}  // namespace
}  // namespace fib
