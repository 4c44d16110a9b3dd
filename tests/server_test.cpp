// Covers server.h and connection.h over real sockets, with the server
// running in-process on an ephemeral port.
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fib_server/fib.h"
#include "test_client.h"

namespace fib::testing {
namespace {

std::string answer(unsigned n) { return std::to_string(fib_iterative(n)); }

TEST(Server, NetcatStyleLines) {
  RunningServer running;
  Client client(running.port());
  client.send("30\n");
  EXPECT_EQ(client.read_line(), "832040");
  client.send("0\r\n");
  EXPECT_EQ(client.read_line(), "0");
  client.send("\n\n2\n");  // empty lines are ignored
  EXPECT_EQ(client.read_line(), "1");
}

TEST(Server, Perf2StyleUnterminatedRequests) {
  RunningServer running;
  Client client(running.port());
  for (int i = 0; i < 200; ++i) {
    client.send("1");
    ASSERT_EQ(client.read_line(), "1") << "request " << i;
  }
  client.send("30");
  EXPECT_EQ(client.read_line(), "832040");
}

TEST(Server, FiveThousandPipelinedRequestsInOneWrite) {
  RunningServer running;
  Client client(running.port());
  std::string requests;
  for (unsigned i = 0; i < 5000; ++i) requests += std::to_string(i % 25) + "\n";
  client.send(requests);
  const std::vector<std::string> lines = client.read_lines(5000);
  ASSERT_EQ(lines.size(), 5000u);
  for (unsigned i = 0; i < 5000; ++i) ASSERT_EQ(lines[i], answer(i % 25)) << "answer " << i;
}

TEST(Server, ErrorLineThenTheNextRequestIsAnswered) {
  RunningServer running;
  Client client(running.port());
  client.send("abc\n");
  const auto error = client.read_line();
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->starts_with("error: \"abc\" is not a number")) << *error;
  client.send("-1\n80\n5\n");
  EXPECT_TRUE(client.read_line()->starts_with("error: \"-1\" is negative"));
  EXPECT_TRUE(client.read_line()->starts_with("error: \"80\" is too large; the largest n this server accepts is 45"));
  EXPECT_EQ(client.read_line(), "5");
}

TEST(Server, MaxNAndAlgorithmAreHonoured) {
  RunningServer running({.algorithm = Algorithm::iterative});
  Client client(running.port());
  client.send("93\n94\n");
  EXPECT_EQ(client.read_line(), "12200160415121876738");
  EXPECT_TRUE(client.read_line()->starts_with("error: \"94\" is too large; the largest n this server accepts is 93"));

  RunningServer capped({.max_n = 10});
  Client other(capped.port());
  other.send("10\n11\n");
  EXPECT_EQ(other.read_line(), "55");
  EXPECT_TRUE(other.read_line()->starts_with("error: \"11\" is too large"));
}

TEST(Server, HalfCloseGetsEveryAnswerThenEof) {
  RunningServer running;
  Client client(running.port());
  client.send("1\n2\n3\n");
  client.shutdown_write();
  EXPECT_EQ(client.read_lines(3), (std::vector<std::string>{"1", "1", "2"}));
  EXPECT_TRUE(client.read_eof());
}

TEST(Server, UnterminatedRequestBeforeHalfCloseIsAnswered) {
  RunningServer running;
  Client client(running.port());
  client.send("4\n10");
  client.shutdown_write();
  EXPECT_EQ(client.read_lines(2), (std::vector<std::string>{"3", "55"}));
  EXPECT_TRUE(client.read_eof());
}

TEST(Server, OverLongLineGetsAnErrorAndTheConnectionIsClosed) {
  RunningServer running;
  Client client(running.port());
  client.send(std::string(20000, '1') + "\n");
  std::vector<std::string> lines;
  while (auto line = client.read_line()) lines.push_back(*line);
  ASSERT_FALSE(lines.empty());
  for (const std::string& line : lines) EXPECT_TRUE(line.starts_with("error: ")) << line;
  EXPECT_TRUE(lines.back().starts_with("error: line longer than 4095 bytes")) << lines.back();
  // The server itself is fine.
  Client next(running.port());
  next.send("6\n");
  EXPECT_EQ(next.read_line(), "8");
}

TEST(Server, ManyConcurrentClientsGetCorrectAnswers) {
  RunningServer running;
  constexpr int kClients = 40;
  constexpr unsigned kRequests = 200;
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      Client client(running.port());
      for (unsigned i = 0; i < kRequests; ++i) {
        const unsigned n = (i + static_cast<unsigned>(c)) % 27;
        client.send(std::to_string(n) + "\n");
        if (client.read_line() != answer(n)) ++wrong;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Server, SlowRequestDoesNotDelayAnotherConnectionInThreadMode) {
  RunningServer running;
  Client slow(running.port());
  Client fast(running.port());
  slow.send("42\n");  // hundreds of milliseconds of recursion
  fast.send("1\n");
  EXPECT_EQ(fast.read_line(), "1");
  EXPECT_FALSE(slow.readable_within(0ms)) << "fib(42) answered before fib(1) on another connection";
  EXPECT_EQ(slow.read_line(30s), answer(42));
}

TEST(Server, SequentialModeServesOneConnectionAtATime) {
  RunningServer running({.mode = Mode::sequential});
  auto first = std::make_unique<Client>(running.port());
  first->send("20\n");
  EXPECT_EQ(first->read_line(), answer(20));
  Client second(running.port());
  second.send("1\n");
  // The first client is still connected, so the second waits in the backlog.
  EXPECT_FALSE(second.readable_within(300ms));
  first.reset();
  EXPECT_EQ(second.read_line(), "1");
}

TEST(Server, ClientsThatResetBeforeReadingDoNotHurtTheServer) {
  RunningServer running;
  for (int i = 0; i < 200; ++i) {
    Client rude(running.port());
    rude.send("25\n25\n25\n");
    const linger reset{1, 0};  // close sends RST, not FIN
    ::setsockopt(rude.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  Client polite(running.port());
  polite.send("25\n");
  EXPECT_EQ(polite.read_line(), answer(25));
}

TEST(Server, StopAnswersRequestsInFlightClosesIdleConnectionsAndJoins) {
  RunningServer running;
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 10; ++i) {
    idle.push_back(std::make_unique<Client>(running.port()));
    idle.back()->send("3\n");
    ASSERT_EQ(idle.back()->read_line(), "2");
  }
  Client busy(running.port());
  busy.send("41\n");
  std::this_thread::sleep_for(50ms);  // let the server start on it
  running.stop_and_join();           // returns only once every thread is joined
  EXPECT_EQ(busy.read_line(0ms), answer(41));
  EXPECT_TRUE(busy.read_eof(0ms));
  for (auto& client : idle) EXPECT_TRUE(client->read_eof(0ms));
  EXPECT_THROW(Client{running.port()}, std::system_error);
}

TEST(Server, PortInUseIsAClearError) {
  RunningServer running;
  const std::string address = "127.0.0.1:" + std::to_string(running.port());
  try {
    Server second({.address = address});
    FAIL() << "a second server bound " << address;
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EADDRINUSE);
    EXPECT_NE(std::string(e.what()).find("cannot listen on " + address + ": bind: Address already in use"),
              std::string::npos)
        << e.what();
  }
}

TEST(Server, ListensOnIPv6LoopbackAndLocalhost) {
  for (const char* address : {"[::1]:0", "localhost:0"}) {
    Server server({.address = address});
    std::thread runner([&] { server.run(); });
    const std::uint16_t port = server.local_endpoint().port();
    EXPECT_NE(port, 0);
    Client client(port, std::string(address).starts_with('[') ? "::1" : "localhost");
    client.send("7\n");
    EXPECT_EQ(client.read_line(), "13");
    server.stop();
    runner.join();
  }
}

}  // namespace
}  // namespace fib::testing
