// Covers the fib_server program as users run it: a real process, real
// signals, its exit status and what it logs.
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fib_server/fib.h"
#include "child_process.h"
#include "test_client.h"

namespace fib::testing {
namespace {

// fib_server as a child process.
class ServerProcess : public ChildProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) : ChildProcess(FIB_SERVER_BIN, std::move(args)) {}
  std::uint16_t wait_for_port() { return wait_for_listening_port(); }
  std::string log() const { return err(); }
};

TEST(Program, HelpDescribesEveryOption) {
  ChildProcess help(FIB_SERVER_BIN, {"--help"});
  EXPECT_EQ(help.wait_exit(5s), 0);
  for (const char* option : {"--mode", "--algorithm", "--max-n", "--shutdown-timeout", "--log-level", "--version"})
    EXPECT_NE(help.out().find(option), std::string::npos) << option;
}

TEST(Program, VersionIsPrinted) {
  ChildProcess version(FIB_SERVER_BIN, {"--version"});
  EXPECT_EQ(version.wait_exit(5s), 0);
  EXPECT_EQ(version.out(), "fib_server " FIB_SERVER_VERSION "\n");
}

TEST(Program, SigtermStopsCleanlyWithClientsConnected) {
  ServerProcess server({"127.0.0.1:0"});
  const std::uint16_t port = server.wait_for_port();
  Client client(port);
  client.send("10\n");
  EXPECT_EQ(client.read_line(), "55");
  server.signal(SIGTERM);
  EXPECT_TRUE(client.read_eof());
  EXPECT_EQ(server.wait_exit(10s), 0);
  const std::string log = server.log();
  EXPECT_NE(log.find("opened"), std::string::npos) << log;
  EXPECT_NE(log.find("closed after 1 requests"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

TEST(Program, SigintLetsTheRequestInFlightFinish) {
  ServerProcess server({"127.0.0.1:0", "--shutdown-timeout", "120"});
  Client client(server.wait_for_port());
  client.send("42\n");
  std::this_thread::sleep_for(50ms);
  server.signal(SIGINT);
  EXPECT_EQ(client.read_line(30s), std::to_string(fib_iterative(42)));
  EXPECT_TRUE(client.read_eof());
  EXPECT_EQ(server.wait_exit(30s), 0);
}

TEST(Program, SecondSignalExitsAtOnce) {
  ServerProcess server({"127.0.0.1:0", "--shutdown-timeout", "60"});
  Client client(server.wait_for_port());
  client.send("45\n45\n45\n");  // many seconds of work
  std::this_thread::sleep_for(50ms);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(200ms), std::nullopt);  // still finishing the work
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(5s), 1);
}

TEST(Program, PortInUseExitsAtOnceNamingTheAddress) {
  ServerProcess first({"127.0.0.1:0"});
  const std::string address = "127.0.0.1:" + std::to_string(first.wait_for_port());
  ServerProcess second({address});
  EXPECT_EQ(second.wait_exit(5s), 1);
  EXPECT_NE(second.log().find("cannot listen on " + address + ": bind: Address already in use"), std::string::npos)
      << second.log();
}

TEST(Program, BadAddressIsAUsageError) {
  ServerProcess server({"localhost"});
  EXPECT_EQ(server.wait_exit(5s), 2);
  EXPECT_NE(server.log().find("bad address \"localhost\": missing ':PORT'"), std::string::npos) << server.log();
}

TEST(Program, LogLevelWarnLeavesOutConnectionLines) {
  const std::uint16_t port = free_port();
  ServerProcess server({"127.0.0.1:" + std::to_string(port), "--log-level", "warn"});
  std::optional<Client> client;
  for (int i = 0; i < 500 && !client; ++i) {
    try {
      client.emplace(port);
    } catch (const std::system_error&) {
      std::this_thread::sleep_for(10ms);  // not listening yet
    }
  }
  ASSERT_TRUE(client.has_value());
  client->send("12\n");
  EXPECT_EQ(client->read_line(), "144");
  client.reset();
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(10s), 0);
  EXPECT_EQ(server.log(), "");
}

}  // namespace
}  // namespace fib::testing
