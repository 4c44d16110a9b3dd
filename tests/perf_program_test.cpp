// Covers the fib_perf program as users run it: its JSON summary and each
// exit status, against the real fib_server on port 0.
#include <csignal>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.h"
#include "fib/net/socket.h"
#include "test_client.h"

namespace fib::testing {
namespace {

std::string address(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

TEST(PerfProgram, HelpDescribesEveryOptionAndVersionIsPrinted) {
  ChildProcess help(FIB_PERF_BIN, {"--help"});
  EXPECT_EQ(help.wait_exit(5s), 0);
  for (const char* option : {"--connections", "--number", "--duration", "--requests", "--rate", "--pipeline",
                             "--warmup", "--timeout", "--json", "--version"})
    EXPECT_NE(help.out().find(option), std::string::npos) << option;
  ChildProcess version(FIB_PERF_BIN, {"--version"});
  EXPECT_EQ(version.wait_exit(5s), 0);
  EXPECT_EQ(version.out(), "fib_perf " FIB_SERVER_VERSION "\n");
}

// --help names each option's type once, without CLI11's labels, and gives
// every exit status.
TEST(PerfProgram, HelpHasPlainTypeNamesAndEveryExitStatus) {
  ChildProcess help(FIB_PERF_BIN, {"--help"});
  EXPECT_EQ(help.wait_exit(5s), 0);
  const std::string out = help.out();
  for (const char* label : {"UINT", "FLOAT", "TEXT", " in ["})
    EXPECT_EQ(out.find(label), std::string::npos) << label << " in " << out;
  for (const char* option : {"address HOST:PORT=127.0.0.1:25000", "-c,--connections N=1", "-n,--number N=1",
                             "-d,--duration SECONDS ", "--requests N ", "--rate RATE ", "--pipeline N=1",
                             "--warmup SECONDS=0", "--timeout SECONDS=10", "; 1 to 100000", "; 0 to 93"})
    EXPECT_NE(out.find(option), std::string::npos) << option << " missing from " << out;
  EXPECT_NE(out.find("4 no errors, but some connections got no answer while the others did"), std::string::npos) << out;
}

// Whole-number options say whether the value is not a whole number or out
// of range, and what they accept.
TEST(PerfProgram, IntegerOptionsSayWhatIsWrongAndWhatTheyAccept) {
  const std::vector<std::pair<std::string, std::string>> options = {{"--connections", "give from 1 to 100000"},
                                                                    {"--number", "give from 0 to 93"},
                                                                    {"--requests", "give from 1 to 1000000000000"},
                                                                    {"--pipeline", "give from 1 to 10000"}};
  for (const auto& [option, accepted] : options) {
    for (const char* value : {"abc", "1.5", "1e3", "0x10", "3x", "+"}) {
      ChildProcess perf(FIB_PERF_BIN, {option + "=" + value});
      EXPECT_EQ(perf.wait_exit(5s), 2) << option << " " << value;
      EXPECT_NE(perf.err().find(option + ": " + value + " is not a whole number; " + accepted), std::string::npos)
          << option << " " << value << ": " << perf.err();
    }
    for (const char* value : {"-1", "100001", "99999999999999999999", "1000000000001"}) {
      if (option == "--requests" && std::string(value) == "100001") continue;  // in its range
      ChildProcess perf(FIB_PERF_BIN, {option + "=" + value});
      EXPECT_EQ(perf.wait_exit(5s), 2) << option << " " << value;
      EXPECT_NE(perf.err().find(option + ": " + value + " is out of range; " + accepted), std::string::npos)
          << option << " " << value << ": " << perf.err();
    }
  }
  ChildProcess zero(FIB_PERF_BIN, {"-c", "0"});
  EXPECT_EQ(zero.wait_exit(5s), 2);
  EXPECT_NE(zero.err().find("--connections: 0 is out of range; give from 1 to 100000"), std::string::npos)
      << zero.err();
  ChildProcess abc(FIB_PERF_BIN, {"-n", "abc"});
  EXPECT_EQ(abc.wait_exit(5s), 2);
  EXPECT_NE(abc.err().find("--number: abc is not a whole number; give from 0 to 93"), std::string::npos) << abc.err();
}

// A leading zero is decimal, not octal as CLI11 would read it: 010 is 10.
TEST(PerfProgram, WholeNumbersAreDecimal) {
  RunningServer server;
  ChildProcess perf(FIB_PERF_BIN, {address(server.port()), "-n", "010", "-c", "+2", "--requests", "4"});
  ASSERT_EQ(perf.wait_exit(30s), 0) << perf.err();
  EXPECT_NE(perf.out().find(", 2 connections, fib(10), "), std::string::npos) << perf.out();
}

// Against a sequential server, two of three connections get nothing: a
// warning naming them, in text and JSON, and exit status 4.
TEST(PerfProgram, ConnectionsLeftUnansweredAreAWarningAndExitFour) {
  RunningServer server({.mode = Mode::sequential});
  ChildProcess text(FIB_PERF_BIN, {address(server.port()), "-c", "3", "-d", "1"});
  EXPECT_EQ(text.wait_exit(30s), 4) << text.out() << text.err();
  EXPECT_TRUE(std::regex_search(text.out(), std::regex(R"(  connections   min 0\.0 req/s, max [0-9.]+ req/s; 2 of 3 )"
                                                       R"(got no answer\n)")))
      << text.out();
  EXPECT_NE(text.out().find("  errors        0 ("), std::string::npos) << text.out();
  EXPECT_NE(text.out().find("warning: 2 of the 3 connections got no answer while the other got "), std::string::npos)
      << text.out();
  ChildProcess json(FIB_PERF_BIN, {address(server.port()), "-c", "3", "-d", "1", "--json"});
  EXPECT_EQ(json.wait_exit(30s), 4) << json.out() << json.err();
  for (const char* key : {"\"errors\":0,", "\"starved_connections\":2,",
                          "\"warnings\":[\"2 of the 3 connections got no answer while the other got "})
    EXPECT_NE(json.out().find(key), std::string::npos) << key << " missing from " << json.out();
}

// fib_server stopped with SIGINT 1 s into a 2.5 s run: the summary says
// when it stopped answering and for how long, and the headline rate is over
// the time it answered, in text and JSON; exit status 1.
TEST(PerfProgram, AServerThatGoesAwayMidRunIsReportedAsAnOutage) {
  for (const bool as_json : {false, true}) {
    ChildProcess server(FIB_SERVER_BIN, {"127.0.0.1:0"});
    const std::uint16_t port = server.wait_for_listening_port();
    std::vector<std::string> args{address(port), "-c", "3", "-d", "2.5"};
    if (as_json) args.emplace_back("--json");
    ChildProcess perf(FIB_PERF_BIN, args);
    std::this_thread::sleep_for(1s);
    server.signal(SIGINT);
    EXPECT_EQ(server.wait_exit(10s), 0);
    EXPECT_EQ(perf.wait_exit(30s), 1) << perf.out() << perf.err();
    const std::string out = perf.out();
    std::smatch m;
    if (as_json) {
      ASSERT_TRUE(std::regex_search(out, m,
                                    std::regex(R"("seconds":(2\.[0-9]+),"requests":([0-9]+),"rps":([0-9.]+),)"
                                               R"("answering_seconds":([0-9.]+),"rps_whole_run":[0-9.]+,)"
                                               R"("outages":\[\{"at_s":([0-9.]+),"for_s":([0-9.]+),"to_end":true\}\],)"
                                               R"("outage_count":1,"not_answering_seconds":([0-9.]+),)")))
          << out;
      const double answering = std::stod(m[4]), at = std::stod(m[5]);
      EXPECT_NEAR(at, 1.0, 0.5) << out;
      EXPECT_NEAR(answering, at, 0.002) << out;
      EXPECT_NEAR(std::stod(m[1]), at + std::stod(m[6]), 0.002) << out;
      EXPECT_NEAR(std::stod(m[3]), std::stod(m[2]) / answering, std::stod(m[3]) * 0.01 + 1) << out;
      EXPECT_NE(out.find(R"("warnings":["the server stopped answering )"), std::string::npos) << out;
    } else {
      ASSERT_TRUE(std::regex_search(out, m,
                                    std::regex(R"(  requests      [0-9]+ in 2\.[0-9]{2} s: [0-9.]+ req/s over the )"
                                               R"(([0-9.]+) s the server answered \([0-9.]+ req/s over all )"
                                               R"(2\.[0-9]{2} s\)\n  outage        not answering from ([0-9.]+) s )"
                                               R"(into the run for the remaining [0-9.]+ s\n)")))
          << out;
      EXPECT_NEAR(std::stod(m[2]), 1.0, 0.5) << out;
      EXPECT_EQ(m[1], m[2]) << out;  // it answered until it stopped
      EXPECT_TRUE(std::regex_search(out, std::regex(R"(\nwarning: the server stopped answering [0-9.]+ s into the run )"
                                                    R"(and did not answer again: [0-9.]+ s to the end; req/s is over )"
                                                    R"(the [0-9.]+ s it answered\n)")))
          << out;
    }
  }
}

TEST(PerfProgram, JsonSummaryHasTheDocumentedKeysAndExitsZero) {
  RunningServer server;
  ChildProcess perf(FIB_PERF_BIN, {address(server.port()), "-c", "2", "--requests", "300", "--json"});
  ASSERT_EQ(perf.wait_exit(30s), 0) << perf.err();
  const std::string out = perf.out();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;  // one object, one line
  for (const char* key :
       {"\"requests\":300,", "\"rps\":", "\"errors\":0,", "\"wrong_answers\":0,", "\"connections\":2,",
        "\"starved_connections\":0,", "\"outages\":[],", "\"outage_count\":0,", "\"latency_us\":{\"p50\":", "\"p90\":",
        "\"p99\":", "\"p999\":", "\"max\":", "\"per_connection_rps\":{\"min\":"}) {
    EXPECT_NE(out.find(key), std::string::npos) << key << " missing from " << out;
  }
}

TEST(PerfProgram, TextSummaryAndLiveLines) {
  RunningServer server;
  ChildProcess perf(FIB_PERF_BIN, {address(server.port()), "-d", "1.5", "-n", "5"});
  ASSERT_EQ(perf.wait_exit(30s), 0) << perf.err();
  const std::string out = perf.out();
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(^\d+ reqs/s  p50 \S+  p99 \S+  errors 0\n)"))) << out;
  EXPECT_NE(out.find("latency       p50 "), std::string::npos) << out;
  EXPECT_NE(out.find("errors        0 (connect 0, reset or EOF 0, timeout 0, error reply 0, wrong answer 0)"),
            std::string::npos)
      << out;
}

TEST(PerfProgram, TheHeaderNamesEveryLimitInForce) {
  RunningServer server;
  ChildProcess perf(FIB_PERF_BIN, {address(server.port()), "-d", "20", "--requests", "50", "--timeout", "3"});
  ASSERT_EQ(perf.wait_exit(30s), 0) << perf.err();  // the 50 requests end it long before 20 s
  EXPECT_NE(perf.out().find(", 1 connection, fib(1), closed loop, pipeline 1, 20 s or 50 requests, whichever comes "
                            "first; a request unanswered for 3 s is an error\n"),
            std::string::npos)
      << perf.out();
}

// --rate and --pipeline reach the run, and the exit status is fib_perf's
// own verdict on the rate: 0 when it was held, 3 when it was not. On a busy
// machine (a sanitizer build, tests running side by side) the client can
// miss its schedule by more than the 1% allowed, so the test tries a few
// times for a held run, and otherwise checks that the miss is what it says.
TEST(PerfProgram, RateAndPipelineThroughTheProgram) {
  RunningServer server;
  std::string out;
  std::optional<int> status;
  for (int attempt = 0; attempt < 3 && status != 0; ++attempt) {
    ChildProcess perf(FIB_PERF_BIN,
                      {address(server.port()), "-c", "2", "--rate", "400", "--pipeline", "4", "-d", "1", "--json"});
    status = perf.wait_exit(30s);
    out = perf.out();
  }
  const bool held = out.find("\"rate_held\":true,") != std::string::npos;
  EXPECT_TRUE(held || out.find("\"rate_held\":false,") != std::string::npos) << out;
  EXPECT_EQ(status, held ? 0 : 3) << out;
  for (const char* key : {"\"rate\":400,", "\"pipeline\":4,",
                          "\"uncorrected_latency_us\":{\"p50\":", "\"scheduled\":", "\"sent\":", "\"errors\":0,"})
    EXPECT_NE(out.find(key), std::string::npos) << key << " missing from " << out;
}

TEST(PerfProgram, ErrorRepliesAreCountedApartAndShownQuotedAndExitOne) {
  RunningServer server;  // recursive: n above 45 gets an error line
  ChildProcess json(FIB_PERF_BIN, {address(server.port()), "-n", "46", "--requests", "10", "--json"});
  EXPECT_EQ(json.wait_exit(30s), 1);
  for (const char* key :
       {"\"error_replies\":10,", "\"wrong_answers\":0,",
        R"("unexpected_replies":["error: \"46\" is too large; the largest n this server accepts is 45"])"})
    EXPECT_NE(json.out().find(key), std::string::npos) << key << " missing from " << json.out();
  ChildProcess text(FIB_PERF_BIN, {address(server.port()), "-n", "46", "--requests", "10"});
  EXPECT_EQ(text.wait_exit(30s), 1);
  EXPECT_NE(text.out().find("errors        10 (connect 0, reset or EOF 0, timeout 0, error reply 10, wrong answer 0)\n"
                            "  server said   \"error: \\\"46\\\" is too large; the largest n this server accepts is "
                            "45\"\n"),
            std::string::npos)
      << text.out();
}

TEST(PerfProgram, WrongNumbersAreWrongAnswersShownQuoted) {
  ScriptedServer liar([](int fd) {  // answers every request with 2
    char buffer[256];
    while (receive_some(fd, buffer) > 0)
      if (!send_all(fd, "2\n")) return;
  });
  ChildProcess perf(FIB_PERF_BIN, {address(liar.port()), "--requests", "5", "--json"});
  EXPECT_EQ(perf.wait_exit(30s), 1);
  for (const char* key : {"\"error_replies\":0,", "\"wrong_answers\":5,", R"("unexpected_replies":["2"])"})
    EXPECT_NE(perf.out().find(key), std::string::npos) << key << " missing from " << perf.out();
}

TEST(PerfProgram, ARateNotKeptExitsThree) {
  RunningServer server;  // recursive fib(32): milliseconds each, far below 2,000 a second on one connection
  ChildProcess perf(FIB_PERF_BIN, {address(server.port()), "-n", "32", "--rate", "2000", "-d", "1", "--json"});
  EXPECT_EQ(perf.wait_exit(30s), 3) << perf.out();
  EXPECT_NE(perf.out().find("\"errors\":0,"), std::string::npos) << perf.out();
  EXPECT_NE(perf.out().find("\"rate_held\":false,"), std::string::npos) << perf.out();
  // Which of the two it says depends on whether the client itself ran late
  // once (a sanitizer build on a busy machine does).
  EXPECT_TRUE(perf.out().find("fell behind the --rate schedule") != std::string::npos ||
              perf.out().find("went out more than 1 ms late") != std::string::npos)
      << perf.out();
}

TEST(PerfProgram, UnreachableServerExitsOneAtOnce) {
  const std::string target = address(free_port());
  ChildProcess perf(FIB_PERF_BIN, {target, "-d", "5"});
  EXPECT_EQ(perf.wait_exit(5s), 1);
  EXPECT_NE(perf.err().find("cannot connect to " + target + ": connect: Connection refused"), std::string::npos)
      << perf.err();
}

TEST(PerfProgram, BadUsageExitsTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{{"-c", "0"},
                                                                                    {"--rate", "-5"},
                                                                                    {"--rate", "3e9"},
                                                                                    {"--timeout", "0.0001"},
                                                                                    {"-d", "1e300"},
                                                                                    {"--bogus"},
                                                                                    {"-n", "94"},
                                                                                    {"nocolon"}}) {
    ChildProcess perf(FIB_PERF_BIN, args);
    EXPECT_EQ(perf.wait_exit(5s), 2) << args[0];
  }
}

// Every floating-point option takes plain decimal numbers only, and says
// what it accepts.
TEST(PerfProgram, FloatingPointOptionsRefuseWhatIsNotADecimalNumber) {
  const std::vector<std::pair<std::string, std::string>> options = {
      {"--duration", "give from 0.001 to 10000000 seconds"},
      {"--rate", "give from 0.01 to 100000000 requests per second"},
      {"--warmup", "give from 0 to 86400 seconds"},
      {"--timeout", "give from 0.001 to 86400 seconds"}};
  for (const auto& [option, accepted] : options) {
    for (const char* value : {"NaN", "inf", "-inf", "0x1p1", "1e999", "abc"}) {
      ChildProcess perf(FIB_PERF_BIN, {option + "=" + value});  // "=": -inf is no option
      EXPECT_EQ(perf.wait_exit(5s), 2) << option << " " << value;
      EXPECT_NE(perf.err().find(accepted), std::string::npos) << option << " " << value << ": " << perf.err();
    }
  }
}

}  // namespace
}  // namespace fib::testing
