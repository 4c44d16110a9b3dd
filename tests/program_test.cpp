// Covers the fib_server program as users run it: a real process, real
// signals, its exit status and what it logs.
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "child_process.h"
#include "eventually.h"
#include "fib/core/fib.h"
#include "metrics_server.h"
#include "modes.h"
#include "test_client.h"

namespace fib::testing {
namespace {

class ProgramTest : public ModeTest {};

// fib_server as a child process.
class ServerProcess : public ChildProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args) : ChildProcess(FIB_SERVER_BIN, std::move(args)) {}
  std::uint16_t wait_for_port() { return wait_for_listening_port(); }
  std::string log() const { return err(); }
};

// Waits until the server's log holds `text` (log lines are written by a
// background thread, a moment after the event).
bool log_shows(const ChildProcess& server, const std::string& text) {
  return eventually([&] { return server.err().find(text) != std::string::npos; });
}

TEST(Program, HelpDescribesEveryOption) {
  ChildProcess help(FIB_SERVER_BIN, {"--help"});
  EXPECT_EQ(help.wait_exit(5s), 0);
  for (const char* option : {"--mode", "--algorithm", "--max-n", "--shutdown-timeout", "--max-connections",
                             "--idle-timeout", "--stats-interval", "--log-level", "--version"})
    EXPECT_NE(help.out().find(option), std::string::npos) << option;
}

TEST(Program, VersionIsPrinted) {
  ChildProcess version(FIB_SERVER_BIN, {"--version"});
  EXPECT_EQ(version.wait_exit(5s), 0);
  EXPECT_EQ(version.out(), "fib_server " FIB_SERVER_VERSION "\n");
}

TEST_P(ProgramTest, SigtermStopsCleanlyWithClientsConnected) {
  ServerProcess server(args({"127.0.0.1:0"}));
  const std::uint16_t port = server.wait_for_port();
  Client client(port);
  client.send("10\n");
  EXPECT_EQ(client.read_line(), "55");
  server.signal(SIGTERM);
  EXPECT_TRUE(client.read_stopping_then_eof());
  EXPECT_EQ(server.wait_exit(10s), 0);
  const std::string log = server.log();
  EXPECT_NE(log.find("opened"), std::string::npos) << log;
  EXPECT_NE(log.find("closed after 1 request: server stopping"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

TEST_P(ProgramTest, SigintLetsTheRequestInFlightFinish) {
  MetricsServer server(args({"127.0.0.1:0", "--shutdown-timeout", "120"}));
  Client client(server.port());
  client.send("42\n");
  ASSERT_TRUE(server.reports(kComputing, 1)) << "fib(42) computing";
  server.signal(SIGINT);
  EXPECT_EQ(client.read_line(30s), std::to_string(fib_iterative(42)));
  EXPECT_TRUE(client.read_stopping_then_eof());
  EXPECT_EQ(server.wait_exit(30s), 0);
}

TEST_P(ProgramTest, AStopIsTheReasonLoggedEvenAfterTheClientHalfClosed) {
  MetricsServer server(args({"127.0.0.1:0"}));
  Client client(server.port());
  client.send("40\n");
  client.shutdown_write();  // as `nc -N` does once its input ends
  ASSERT_TRUE(server.reports(kComputing, 1)) << "fib(40) computing";
  server.signal(SIGTERM);
  EXPECT_EQ(client.read_line(), std::to_string(fib_iterative(40)));
  EXPECT_TRUE(client.read_stopping_then_eof());
  EXPECT_EQ(server.wait_exit(10s), 0);
  EXPECT_NE(server.log().find("closed after 1 request: server stopping"), std::string::npos) << server.log();
}

TEST_P(ProgramTest, SecondSignalExitsAtOnce) {
  MetricsServer server(args({"127.0.0.1:0", "--shutdown-timeout", "60"}));
  Client client(server.port());
  client.send("45\n45\n45\n");  // many seconds of work
  ASSERT_TRUE(server.reports(kComputing, 1)) << "fib(45) computing";
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
  EXPECT_NE(second.log().find("another program listens there (`ss -ltnp` names it): stop it, or choose another port"),
            std::string::npos)
      << second.log();
}

TEST(Program, TimeoutsBelowAMillisecondAreRefused) {
  for (const char* option : {"--idle-timeout", "--stats-interval"}) {
    ChildProcess server(FIB_SERVER_BIN, {option, "0.0001"});
    EXPECT_EQ(server.wait_exit(5s), 2) << option;
    EXPECT_NE(server.err().find("0.0001 is out of range; give 0 (off) or from 0.001 to 86400 seconds"),
              std::string::npos)
        << server.err();
  }
}

// Every floating-point option takes plain decimal numbers only: NaN, the
// infinities, hexadecimal floats and numbers beyond a double are refused
// with exit status 2 and what the option accepts (a NaN --shutdown-timeout
// used to be taken, and made a stop give up at once).
TEST(Program, FloatingPointOptionsRefuseWhatIsNotADecimalNumber) {
  const std::vector<std::pair<std::string, std::string>> options = {
      {"--shutdown-timeout", "give from 0 to 86400 seconds"},
      {"--idle-timeout", "give 0 (off) or from 0.001 to 86400 seconds"},
      {"--stats-interval", "give 0 (off) or from 0.001 to 86400 seconds"}};
  for (const auto& [option, accepted] : options) {
    for (const char* value : {"NaN", "nan", "inf", "-inf", "infinity", "0x1p1", "1e999", "1,5", "2s"}) {
      ChildProcess server(FIB_SERVER_BIN, {"127.0.0.1:0", option + "=" + value});  // "=": -inf is no option
      EXPECT_EQ(server.wait_exit(5s), 2) << option << " " << value;
      EXPECT_NE(server.err().find(accepted), std::string::npos) << option << " " << value << ": " << server.err();
    }
  }
  ServerProcess server({"127.0.0.1:0", "--shutdown-timeout", "1e1", "--idle-timeout", ".5", "--stats-interval", "+2"});
  Client client(server.wait_for_port());
  client.send("10\n");
  EXPECT_EQ(client.read_line(), "55");
}

// SIGHUP (a closed terminal, an ssh session ending) stops the server the way
// SIGTERM does; SIGUSR1 and SIGUSR2 from outside do nothing; SIGQUIT exits at
// once, the way out when a graceful stop is not wanted. In every mode.
class SignalTest : public ModeTest {};

TEST_P(SignalTest, HangupStopsGracefully) {
  MetricsServer server(args({"127.0.0.1:0"}));
  Client client(server.port());
  client.send("40\n");
  ASSERT_TRUE(server.reports(kComputing, 1)) << "fib(40) computing";  // read, so answered
  server.signal(SIGHUP);
  EXPECT_EQ(client.read_line(), std::to_string(fib_iterative(40)));
  EXPECT_TRUE(client.read_stopping_then_eof());
  EXPECT_EQ(server.wait_exit(10s), 0);
  EXPECT_NE(server.log().find("Hangup received: answering what was read"), std::string::npos) << server.log();
}

TEST_P(SignalTest, UserSignalsFromOutsideDoNothing) {
  ServerProcess server(args({"127.0.0.1:0"}));
  Client client(server.wait_for_port());
  for (const int signal : {SIGUSR1, SIGUSR2}) {
    server.signal(signal);
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(server.wait_exit(0ms), std::nullopt) << strsignal(signal);
    client.send("10\n");
    EXPECT_EQ(client.read_line(), "55") << strsignal(signal);
  }
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(10s), 0);
}

TEST_P(SignalTest, QuitExitsAtOnce) {
  // No core file from the child: it inherits this limit.
  rlimit no_core{0, 0};
  ASSERT_EQ(::setrlimit(RLIMIT_CORE, &no_core), 0);
  MetricsServer server(args({"127.0.0.1:0", "--shutdown-timeout", "60"}));
  Client client(server.port());
  client.send("45\n");  // a second or more of work a stop would wait for
  ASSERT_TRUE(server.reports(kComputing, 1)) << "fib(45) computing";
  server.signal(SIGQUIT);
  EXPECT_EQ(server.wait_exit(500ms), 128 + SIGQUIT);
}

INSTANTIATE_TEST_SUITE_P(Modes, SignalTest, all_modes(), mode_name);

// --threads and --workers belong to the modes with event loops: elsewhere
// they are refused, not ignored; there, the log says what runs.
class ModeOptionsTest : public ModeTest {};

TEST_P(ModeOptionsTest, LoopOptionsAreRefusedInOtherModesAndHonouredInTheirs) {
  const std::string name(to_string(mode()));
  if (!info(mode()).event_loops) {
    std::string loop_modes;  // as the refusal names them: "--mode a or --mode b"
    for (const ModeInfo& row : modes())
      if (row.event_loops) loop_modes += fmt::format("{}--mode {}", loop_modes.empty() ? "" : " or ", row.name);
    for (const char* option : {"--threads", "--workers"}) {
      ChildProcess server(FIB_SERVER_BIN, args({"127.0.0.1:0", option, "2"}));
      EXPECT_EQ(server.wait_exit(5s), 2) << option;
      EXPECT_NE(server.err().find(fmt::format("{}: only applies to {} (the mode is {})", option, loop_modes, name)),
                std::string::npos)
          << server.err();
    }
    return;
  }
  ServerProcess server(args({"127.0.0.1:0", "--threads", "3", "--workers", "1"}));
  Client client(server.wait_for_port());
  client.send("30\n");
  EXPECT_EQ(client.read_line(), std::to_string(fib_iterative(30)));
  // "(coroutine mode, 3 event loops, 1 workers,": each engine names its loops.
  const std::string log = server.log();
  EXPECT_TRUE(std::regex_search(log, std::regex(fmt::format(R"(\({} mode, 3 [a-z_ ]*loops, 1 workers,)", name))))
      << log;
}

INSTANTIATE_TEST_SUITE_P(Modes, ModeOptionsTest, all_modes(), mode_name);

// Where io_uring is forbidden (a container's seccomp profile), --mode uring
// says why and what to use instead, and exits 1; the other modes serve.
TEST(Program, UringModeWhereIoUringIsForbiddenSaysWhyAndWhatToUse) {
  ChildProcess refused(WITHOUT_IO_URING_BIN, {FIB_SERVER_BIN, "127.0.0.1:0", "--mode", "uring"});
  EXPECT_EQ(refused.wait_exit(5s), 1) << refused.err();
  EXPECT_NE(refused.err().find("fib_server: --mode uring: io_uring cannot be set up: Operation not permitted (it is "
                               "forbidden here: a seccomp filter"),
            std::string::npos)
      << refused.err();
  EXPECT_NE(refused.err().find("--mode coroutine serves the same on epoll"), std::string::npos) << refused.err();
  ChildProcess coroutine(WITHOUT_IO_URING_BIN, {FIB_SERVER_BIN, "127.0.0.1:0", "--mode", "coroutine"});
  Client client(coroutine.wait_for_listening_port());
  client.send("20\n");
  EXPECT_EQ(client.read_line(), "6765");
}

TEST(Program, FatalErrorsAreShownWhateverTheLogLevel) {
  ServerProcess first({"127.0.0.1:0"});
  const std::string address = "127.0.0.1:" + std::to_string(first.wait_for_port());
  ServerProcess second({address, "--log-level", "off"});
  EXPECT_EQ(second.wait_exit(5s), 1);
  EXPECT_NE(second.log().find("cannot listen on " + address + ": bind: Address already in use"), std::string::npos)
      << second.log();
}

// What a new user types first, and what they are told to type instead.
TEST(Program, UsageMistakesSayWhatToTypeInstead) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--port", "25101"},
       "--port: there is no such option: the address is the argument, HOST:PORT, for instance "
       "127.0.0.1:25000, or :25000 for every interface"},
      {{"-p", "25101"}, "-p: there is no such option: the address is the argument"},
      {{"25101"}, "missing ':PORT'; for port 25101, write :25101 (every interface) or 127.0.0.1:25101"},
      {{"--threads", "abc", "--mode", "coroutine"}, "--threads: abc is not a whole number; give from 1 to 1024"},
      {{"--max-n", "94"}, "--max-n: 94 is out of range; give from 1 to 93"},
      {{"--max-computing", "-1"}, "--max-computing: -1 is out of range; give from 0 to 1024"}};
  for (const auto& [args, message] : cases) {
    ServerProcess server(args);
    EXPECT_EQ(server.wait_exit(5s), 2) << args[0];
    EXPECT_NE(server.log().find(message), std::string::npos) << server.log();
  }
}

// --help opens with what the program is, in all three modes, and ends its
// description with the exit statuses; no CLI11 type noise.
TEST(Program, HelpSaysWhatItIsAndItsExitStatuses) {
  ChildProcess help(FIB_SERVER_BIN, {"--help"});
  EXPECT_EQ(help.wait_exit(5s), 0);
  const std::string out = help.out();
  EXPECT_TRUE(out.starts_with("TCP Fibonacci server.")) << out;
  EXPECT_NE(out.find("Exit status: 0 stopped by a signal; 1 could not start"), std::string::npos) << out;
  for (const char* noise : {"UINT", "TEXT", "FLOAT", "in [", "may use, "})
    EXPECT_EQ(out.find(noise), std::string::npos) << noise << " in\n" << out;
}

TEST(Program, BadAddressIsAUsageError) {
  ServerProcess server({"localhost"});
  EXPECT_EQ(server.wait_exit(5s), 2);
  EXPECT_NE(server.log().find("bad address \"localhost\": missing ':PORT'"), std::string::npos) << server.log();
}

TEST_P(ProgramTest, QuietLogLevelsKeepOnlyWhereItListens) {
  for (const char* level : {"warn", "off"}) {
    // Port 0: the listening line is the only way to learn the port.
    ServerProcess server(args({"127.0.0.1:0", "--log-level", level}));
    const std::uint16_t port = server.wait_for_port();
    {
      Client client(port);
      client.send("12\n");
      EXPECT_EQ(client.read_line(), "144");
    }
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit(10s), 0);
    const std::string log = server.log();
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << level << ":\n" << log;
    EXPECT_NE(log.find("listening on 127.0.0.1:" + std::to_string(port) + " ("), std::string::npos) << log;
  }
}

TEST(Program, LogLinesCountInTheSingularAndThePlural) {
  ServerProcess server({"127.0.0.1:0", "--max-connections", "1"});
  const std::uint16_t port = server.wait_for_port();
  {
    Client one(port);
    one.send("1\n");
    EXPECT_EQ(one.read_line(), "1");
    Client refused(port);
    EXPECT_EQ(refused.read_line(),
              "error: server busy: 1 connection open, the most it serves at once; try again later");
  }
  for (int attempt = 0;; ++attempt) {  // once the first connection's end has been seen
    Client two(port);
    two.send("1\n2\n");
    const auto line = two.read_line();
    ASSERT_TRUE(line.has_value());
    if (*line == "1") {
      EXPECT_EQ(two.read_line(), "1");
      break;
    }
    ASSERT_LT(attempt, 100) << *line;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(log_shows(server, "closed after 2 requests: closed by the client")) << server.log();
  const std::string log = server.log();
  EXPECT_NE(log.find("at most 1 connection,"), std::string::npos) << log;
  EXPECT_NE(log.find("refused: 1 connection open (--max-connections)"), std::string::npos) << log;
  EXPECT_NE(log.find("closed after 1 request: closed by the client"), std::string::npos) << log;
}

TEST(Program, ARecursiveCapBeyondReasonIsRefused) {
  ServerProcess refused({"127.0.0.1:0", "--max-n", "93"});
  EXPECT_EQ(refused.wait_exit(5s), 2);
  EXPECT_NE(refused.log().find("--max-n: 93 is too large for --algorithm recursive"), std::string::npos)
      << refused.log();
  ServerProcess iterative({"127.0.0.1:0", "--max-n", "93", "--algorithm", "iterative"});
  Client client(iterative.wait_for_port());
  client.send("93\n");
  EXPECT_EQ(client.read_line(), std::to_string(fib_iterative(93)));
  ServerProcess highest({"127.0.0.1:0", "--max-n", "50"});
  EXPECT_NE(highest.wait_for_port(), 0);
  EXPECT_NE(highest.log().find("n up to 50"), std::string::npos) << highest.log();
}

TEST(Program, AnUnknownOptionIsNamedEvenWithAValueAfterIt) {
  ServerProcess server({"-d", "3"});
  EXPECT_EQ(server.wait_exit(5s), 2);
  EXPECT_NE(server.log().find("-d"), std::string::npos) << server.log();
  EXPECT_EQ(server.log().find("bad address"), std::string::npos) << server.log();
}

TEST(Program, RaisesTheSoftDescriptorLimitToTheHardOne) {
  ChildProcess server("/usr/bin/prlimit", {"--nofile=100:200", FIB_SERVER_BIN, "127.0.0.1:0"});
  server.wait_for_listening_port();
  EXPECT_NE(server.err().find("descriptor limit 200"), std::string::npos) << server.err();
  EXPECT_NE(server.err().find("at most 184 connections"), std::string::npos) << server.err();
}

TEST_P(ProgramTest, OutOfDescriptorsBacksOffQuietlyAndRecovers) {
#ifdef FIB_SERVER_SANITIZED
  GTEST_SKIP() << "sanitizer runtimes need descriptors of their own to check memory, and report falsely when "
                  "there are none left; the normal build runs this test";
#endif
  // 64 descriptors, and a connection limit above that, so accept runs out.
  ChildProcess server("/usr/bin/prlimit",
                      {"--nofile=64:64", FIB_SERVER_BIN, "127.0.0.1:0", "--max-connections", "1000"});
  const std::uint16_t port = server.wait_for_listening_port();
  std::vector<std::unique_ptr<Client>> hogs;
  for (int i = 0; i < 100; ++i) hogs.push_back(std::make_unique<Client>(port));  // the kernel queues them all
  std::this_thread::sleep_for(300ms);
  const double cpu_before = server.cpu_seconds();
  std::this_thread::sleep_for(1s);
  const double busy = server.cpu_seconds() - cpu_before;
  EXPECT_LT(busy, 0.2) << "the accept loop spun";
  const std::string log = server.err();
  const std::string warning = "accept: Too many open files; pausing accepts until resources free up";
  EXPECT_NE(log.find(warning), std::string::npos) << log;
  EXPECT_EQ(log.find(warning), log.rfind(warning)) << "warned more than once";
  // The ones it could accept are served.
  hogs.front()->send("4\n");
  EXPECT_EQ(hogs.front()->read_line(), "3");
  hogs.clear();
  Client next(port);
  next.send("12\n");
  EXPECT_EQ(next.read_line(10s), "144");
  EXPECT_EQ(server.wait_exit(0ms), std::nullopt);  // still running
}

TEST_P(ProgramTest, ThreadsHaveSmallStacks) {
#ifdef FIB_SERVER_TSAN
  GTEST_SKIP() << "a ThreadSanitizer build keeps the default stacks (its per-thread state would not fit); the "
                  "normal and AddressSanitizer builds run this test";
#endif
  ServerProcess server(args({"127.0.0.1:0"}));
  const std::uint16_t port = server.wait_for_port();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<Client>(port));
    clients.back()->send("20\n");
    EXPECT_EQ(clients.back()->read_line(), "6765");
  }
  std::this_thread::sleep_for(100ms);  // every thread back to waiting
  const std::vector<std::size_t> stacks = server.thread_stack_sizes();
  EXPECT_GE(stacks.size(), 4U);  // in thread mode, one per connection; the log thread; loops and workers
  for (const std::size_t bytes : stacks) EXPECT_LE(bytes, 128U * 1024) << "a thread with the default 8 MiB stack";
}

TEST(Program, ThreadCreationFailureIsAnErrorLineAndTheServerCarriesOn) {
#ifdef FIB_SERVER_SANITIZED
  GTEST_SKIP() << "a sanitized fib_server reserves terabytes of address space and cannot start under a small "
                  "RLIMIT_AS; the normal build runs this test";
#endif
  // Up to 2,000 clients in this process: its soft descriptor limit (1,024 in
  // a login session) is raised to the hard one for the test, as the server
  // raises its own.
  struct RestoreLimit {
    rlimit saved{};
    ~RestoreLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
  } restore;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &restore.saved), 0);
  const rlimit raised{restore.saved.rlim_max, restore.saved.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
  // Little address space: threads (their stacks and malloc arenas) run out.
  ChildProcess server("/usr/bin/prlimit", {"--as=200000000", FIB_SERVER_BIN, "127.0.0.1:0"});
  const std::uint16_t port = server.wait_for_listening_port();
  std::vector<std::unique_ptr<Client>> clients;
  std::string refusal;
  for (int i = 0; i < 2000 && refusal.empty(); ++i) {
    clients.push_back(std::make_unique<Client>(port));
    clients.back()->send("1\n");
    const auto line = clients.back()->read_line();
    ASSERT_TRUE(line.has_value()) << "connection " << i;
    if (*line != "1") refusal = *line;
  }
  EXPECT_EQ(refusal, "error: server cannot start a thread for this connection; try again later");
  EXPECT_TRUE(clients.back()->read_eof());
  EXPECT_TRUE(log_shows(server, "cannot start a thread")) << server.err();
  clients.clear();
  for (int attempt = 0;; ++attempt) {  // once threads have ended, newcomers are served again
    Client next(port);
    next.send("11\n");
    const auto line = next.read_line();
    ASSERT_TRUE(line.has_value());
    if (*line == "89") break;
    ASSERT_LT(attempt, 200) << *line;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server.wait_exit(0ms), std::nullopt);
}

TEST_P(ProgramTest, RestartRightAfterAStopBindsAtOnce) {
  const std::string address = "127.0.0.1:" + std::to_string(free_port());
  for (int round = 0; round < 2; ++round) {
    ServerProcess server(args({address}));
    server.wait_for_port();
    for (int i = 0; i < 20; ++i) {  // connections the server closes first leave TIME_WAIT behind
      Client client(static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
      client.send("2\n");
      EXPECT_EQ(client.read_line(), "1");
    }
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit(10s), 0) << server.log();
  }
}

TEST_P(ProgramTest, StopUnderLoadDeliversEveryAnswerInFlight) {
  MetricsServer server(args({"127.0.0.1:0", "--shutdown-timeout", "120"}));
  const std::uint16_t port = server.port();
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 50; ++i) {
    idle.push_back(std::make_unique<Client>(port));
    idle.back()->send("1\n");
    ASSERT_EQ(idle.back()->read_line(), "1");
  }
  std::vector<std::unique_ptr<Client>> busy;
  for (int i = 0; i < 4; ++i) {
    busy.push_back(std::make_unique<Client>(port));
    busy.back()->send("1\n");
    ASSERT_EQ(busy.back()->read_line(), "1");
    busy.back()->send("38\n39\n");
  }
  // Read, every one: computing, waiting for a turn or for a worker.
  const auto slow_requests = [](const Samples& samples) {
    double sum = 0;
    for (const std::string& name : {kComputing, std::string(R"(fib_server_slow_requests{state="waiting_turn"})"),
                                    std::string("fib_server_slow_requests_waiting")})
      if (const auto found = samples.find(name); found != samples.end()) sum += found->second;
    return sum;
  };
  ASSERT_TRUE(eventually([&] { return slow_requests(server.scrape()) == 4; })) << "4 slow requests read";
  server.signal(SIGTERM);
  for (auto& client : busy) {
    EXPECT_EQ(client->read_line(60s), std::to_string(fib_iterative(38)));
    EXPECT_EQ(client->read_line(60s), std::to_string(fib_iterative(39)));
    EXPECT_TRUE(client->read_stopping_then_eof());
  }
  for (auto& client : idle) EXPECT_TRUE(client->read_stopping_then_eof());
  EXPECT_EQ(server.wait_exit(60s), 0);
}

TEST_P(ProgramTest, StatisticsLinesAndTheShutdownSummary) {
  ServerProcess server(args({"127.0.0.1:0", "--stats-interval", "0.2", "--max-connections", "1"}));
  const std::uint16_t port = server.wait_for_port();
  Client client(port);
  client.send("1\n2\n3\nfour\n5\n");
  EXPECT_EQ(client.read_lines(5).size(), 5u);
  {
    Client refused(port);  // over --max-connections
    EXPECT_TRUE(refused.read_line()->starts_with("error: server busy"));
  }
  EXPECT_TRUE(log_shows(server, "stats: 1 connection open, 2 accepted, 1 refused, 5 requests served")) << server.log();
  EXPECT_NE(server.log().find("req/s), 1 error"), std::string::npos) << server.log();
  server.signal(SIGTERM);
  EXPECT_TRUE(client.read_stopping_then_eof());
  EXPECT_EQ(server.wait_exit(10s), 0);
  EXPECT_NE(server.log().find("stats at shutdown: 0 connections open, 2 accepted, 1 refused, 5 requests served"),
            std::string::npos)
      << server.log();
}

TEST_P(ProgramTest, ClientsThatVanishDoNotKillTheProcess) {
  ServerProcess server(args({"127.0.0.1:0"}));
  const std::uint16_t port = server.wait_for_port();
  for (int i = 0; i < 300; ++i) {
    Client rude(port);
    rude.send("27\n27\n27\n27\n");
    const linger reset{1, 0};  // gone, with answers on their way: a send to a dead peer
    ::setsockopt(rude.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  Client polite(port);
  polite.send("27\n");
  EXPECT_EQ(polite.read_line(), std::to_string(fib_iterative(27)));
  EXPECT_EQ(server.wait_exit(0ms), std::nullopt);
}

INSTANTIATE_TEST_SUITE_P(Modes, ProgramTest, concurrent_modes(), mode_name);

}  // namespace
}  // namespace fib::testing
