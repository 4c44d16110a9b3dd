// Covers the fib_server program as users run it: a real process, real
// signals, its exit status and what it logs.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fib_server/fib.h"
#include "test_client.h"

extern char** environ;

namespace fib::testing {
namespace {

// fib_server started with `args`, its stderr going to a temporary file.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) {
    char path[] = "/tmp/fib_server_test_XXXXXX";
    const int log = ::mkstemp(path);
    log_path_ = path;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, log, STDERR_FILENO);
    args.insert(args.begin(), FIB_SERVER_BIN);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, FIB_SERVER_BIN, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(log);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn");
  }
  ~ServerProcess() {
    if (!exit_status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::unlink(log_path_.c_str());
  }

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // The port from "listening on 127.0.0.1:PORT", once logged.
  std::uint16_t wait_for_port() {
    const std::regex listening(R"(listening on 127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 1000; ++i) {
      std::smatch match;
      const std::string text = log();
      if (std::regex_search(text, match, listening)) return static_cast<std::uint16_t>(std::stoi(match[1]));
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "no 'listening on' line; log:\n" << log();
    return 0;
  }

  void signal(int number) { ::kill(pid_, number); }

  // The exit status, or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exit_status_) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      } else if (std::chrono::steady_clock::now() > deadline) {
        return std::nullopt;
      } else {
        std::this_thread::sleep_for(5ms);
      }
    }
    return exit_status_;
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_status_;
};

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
  ServerProcess server({"127.0.0.1:0"});
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

// A port that was free a moment ago, for a server that will not log its own.
std::uint16_t free_port() {
  Endpoint bound;
  listen_tcp({"127.0.0.1", 0}, &bound);  // closed again at once
  return bound.port();
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
