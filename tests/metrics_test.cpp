// Covers --metrics: a real fib_server process serving Prometheus's text
// format over HTTP, scraped with a plain socket, its counters checked
// against what the test's clients were sent; and the start-up failures.
#include <csignal>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.h"
#include "fib/core/fib.h"
#include "fib/core/line_framer.h"
#include "fib/net/socket.h"
#include "modes.h"
#include "test_client.h"

namespace fib::testing {
namespace {

using Samples = std::map<std::string, double>;  // "name{labels}" -> value

// True when `samples` has `name` with that value.
bool holds(const Samples& samples, const std::string& name, double value) {
  const auto found = samples.find(name);
  return found != samples.end() && found->second == value;
}

// fib_server with --metrics on a free port, and its metrics endpoint.
class MetricsServer {
 public:
  explicit MetricsServer(std::vector<std::string> args) : process_(FIB_SERVER_BIN, with_metrics(std::move(args))) {
    port_ = process_.wait_for_listening_port();
    std::smatch match;
    const std::string log = process_.err();
    if (std::regex_search(log, match, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)")))
      metrics_port_ = static_cast<std::uint16_t>(std::stoi(match[1]));
  }
  ~MetricsServer() {
    process_.signal(SIGTERM);
    process_.wait_exit(10s);
  }
  std::uint16_t port() const { return port_; }
  std::uint16_t metrics_port() const { return metrics_port_; }
  std::string log() const { return process_.err(); }

  // GET /metrics: the response's body, parsed, after checking the status
  // line. Empty when the request failed.
  Samples scrape() const {
    Client http(metrics_port_);
    http.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    Samples samples;
    const std::optional<std::string> status = http.read_line(5s);
    if (!status || status->rfind("HTTP/1.1 200", 0) != 0) {
      ADD_FAILURE() << "status line: " << status.value_or("(none)");
      return samples;
    }
    bool body = false;
    while (const std::optional<std::string> line = http.read_line(5s)) {
      if (!body) {
        body = *line == "\r";
        continue;
      }
      if (line->empty() || line->front() == '#') continue;
      const std::size_t space = line->rfind(' ');
      samples[line->substr(0, space)] = std::stod(line->substr(space + 1));
    }
    return samples;
  }

  // Scrapes until `done` holds for what it read (at most a few seconds).
  template <typename Done>
  Samples scrape_until(Done&& done) const {
    Samples samples = scrape();
    for (int i = 0; i < 100 && !done(samples); ++i) {
      std::this_thread::sleep_for(20ms);
      samples = scrape();
    }
    return samples;
  }

 private:
  static std::vector<std::string> with_metrics(std::vector<std::string> args) {
    args.insert(args.end(), {"--metrics", "127.0.0.1:0"});
    return args;
  }
  ChildProcess process_;
  std::uint16_t port_ = 0;
  std::uint16_t metrics_port_ = 0;
};

// Every mode counts the same way.
class MetricsTest : public ModeTest {};
// What needs connections served at once.
class ConcurrentMetricsTest : public ModeTest {};

TEST_P(MetricsTest, CountsWhatClientsWereAnswered) {
  MetricsServer server(args({"127.0.0.1:0", "--max-n", "30"}));
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  {
    Client client(server.port());
    client.send("10\n20\n\nabc\n-5\n31\n7\n");  // the blank line gets no reply
    EXPECT_EQ(client.read_lines(6), (std::vector<std::string>{
                                        "55",
                                        "6765",
                                        R"(error: "abc" is not a number; send one whole number from 0 to 30 per line)",
                                        R"(error: "-5" is negative; send one whole number from 0 to 30 per line)",
                                        R"(error: "31" is too large; the largest n this server accepts is 30)",
                                        "13",
                                    }));
    client.shutdown_write();
    EXPECT_TRUE(client.read_eof());
  }
  {
    Client client(server.port());
    client.send(std::string(LineFramer::kMaxLineBytes + 10, '1'));
    const std::optional<std::string> line = client.read_line();
    ASSERT_TRUE(line.has_value());
    EXPECT_EQ(line->rfind("error: ", 0), 0u) << *line;
    EXPECT_TRUE(client.read_eof());
  }
  const Samples samples = server.scrape_until([](const Samples& s) {
    return holds(s, R"(fib_server_connections_ended_total{reason="line_too_long"})", 1) &&
           holds(s, R"(fib_server_connections_ended_total{reason="closed"})", 1);
  });
  EXPECT_EQ(samples.at("fib_server_answers_total"), 3);
  EXPECT_EQ(samples.at(R"(fib_server_error_lines_total{kind="not_a_number"})"), 1);
  EXPECT_EQ(samples.at(R"(fib_server_error_lines_total{kind="negative"})"), 1);
  EXPECT_EQ(samples.at(R"(fib_server_error_lines_total{kind="too_large"})"), 1);
  EXPECT_EQ(samples.at(R"(fib_server_error_lines_total{kind="line_too_long"})"), 1);
  EXPECT_EQ(samples.at("fib_server_connections_accepted_total"), 2);
  EXPECT_EQ(samples.at("fib_server_connections_open"), 0);
  EXPECT_EQ(samples.at(R"(fib_server_connections_ended_total{reason="idle"})"), 0);
  EXPECT_EQ(samples.at(R"(fib_server_connections_refused_total{reason="over_limit"})"), 0);
  // Every connection accepted is open, refused or ended.
  double ended = 0;
  for (const auto& [name, value] : samples)
    if (name.rfind("fib_server_connections_ended_total{", 0) == 0) ended += value;
  EXPECT_EQ(ended, 2);
  // Every reply has its service time: the buckets are cumulative and end at +Inf.
  EXPECT_EQ(samples.at("fib_server_request_duration_seconds_count"), 7);
  EXPECT_EQ(samples.at(R"(fib_server_request_duration_seconds_bucket{le="+Inf"})"), 7);
  EXPECT_GT(samples.at("fib_server_request_duration_seconds_sum"), 0);
  EXPECT_LE(samples.at(R"(fib_server_request_duration_seconds_bucket{le="1e-05"})"),
            samples.at(R"(fib_server_request_duration_seconds_bucket{le="0.001"})"));
  const std::string build = R"(fib_server_build_info{version=")" FIB_SERVER_VERSION R"(",mode=")" +
                            std::string(to_string(mode())) + R"(",algorithm="recursive",max_n="30"})";
  EXPECT_EQ(samples.count(build), 1u) << "no " << build;
}

TEST_P(MetricsTest, ServiceTimeIncludesTheComputation) {
  MetricsServer server(args({"127.0.0.1:0"}));
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  Client client(server.port());
  client.send("35\n");  // recursive: about 10 ms of work, more under sanitizers
  EXPECT_EQ(client.read_line(), std::to_string(fib_iterative(35)));
  const Samples samples =
      server.scrape_until([](const Samples& s) { return holds(s, "fib_server_request_duration_seconds_count", 1); });
  EXPECT_EQ(samples.at("fib_server_request_duration_seconds_count"), 1);
  EXPECT_EQ(samples.at(R"(fib_server_request_duration_seconds_bucket{le="0.001"})"), 0);
  EXPECT_GT(samples.at("fib_server_request_duration_seconds_sum"), 0.001);
}

TEST_P(ConcurrentMetricsTest, RefusedConnectionsAreCountedByReason) {
  MetricsServer server(args({"127.0.0.1:0", "--max-connections", "1"}));
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  Client held(server.port());
  held.send("1\n");
  ASSERT_EQ(held.read_line(), "1");
  Client refused(server.port());
  const std::optional<std::string> line = refused.read_line();
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->rfind("error: server busy", 0), 0u) << *line;
  const Samples samples = server.scrape_until(
      [](const Samples& s) { return holds(s, R"(fib_server_connections_refused_total{reason="over_limit"})", 1); });
  EXPECT_EQ(samples.at(R"(fib_server_connections_refused_total{reason="over_limit"})"), 1);
  EXPECT_EQ(samples.at(R"(fib_server_connections_refused_total{reason="no_thread"})"), 0);
  EXPECT_EQ(samples.at("fib_server_connections_accepted_total"), 2);
  EXPECT_EQ(samples.at("fib_server_connections_open"), 1);
}

// While a slow request runs, the thread serving it (thread mode) or a
// worker (coroutine mode) shows as busy.
TEST_P(ConcurrentMetricsTest, BusyThreadsShowWhileASlowRequestRuns) {
  MetricsServer server(args({"127.0.0.1:0"}));
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  const std::string busy =
      mode() == Mode::coroutine ? "fib_server_workers_busy" : R"(fib_server_connection_threads{state="busy"})";
  EXPECT_EQ(server.scrape().at(busy), 0);
  Client client(server.port());
  client.send("42\n");  // a few hundred milliseconds of work
  const Samples samples = server.scrape_until([&](const Samples& s) { return holds(s, busy, 1); });
  EXPECT_EQ(samples.at(busy), 1);
  EXPECT_EQ(client.read_line(30s), std::to_string(fib_iterative(42)));
  if (mode() == Mode::coroutine) {
    EXPECT_GT(samples.at("fib_server_event_loop_cpu_seconds_total"), 0);
    EXPECT_EQ(samples.at("fib_server_workers"), static_cast<double>(usable_cpus()));
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, MetricsTest, ::testing::Values(Mode::thread, Mode::coroutine, Mode::sequential),
                         mode_name);
INSTANTIATE_TEST_SUITE_P(Modes, ConcurrentMetricsTest, concurrent_modes(), mode_name);

TEST(Metrics, BusyPortFailsAtStartWithTheReason) {
  Endpoint bound;
  const Fd taken = listen_tcp({"127.0.0.1", 0}, &bound);
  ChildProcess server(FIB_SERVER_BIN, {"127.0.0.1:0", "--metrics", "127.0.0.1:" + std::to_string(bound.port())});
  EXPECT_EQ(server.wait_exit(10s), 1);
  EXPECT_NE(server.err().find("--metrics: cannot listen on 127.0.0.1:" + std::to_string(bound.port()) +
                              ": bind: Address already in use"),
            std::string::npos)
      << server.err();
}

TEST(Metrics, IPv6AddressFailsAtStartSayingWhy) {
  ChildProcess server(FIB_SERVER_BIN, {"127.0.0.1:0", "--metrics", "[::1]:0"});
  EXPECT_EQ(server.wait_exit(10s), 1);
  EXPECT_NE(server.err().find("is not an IPv4 address"), std::string::npos) << server.err();
}

TEST(Metrics, MalformedAddressIsAUsageError) {
  ChildProcess server(FIB_SERVER_BIN, {"127.0.0.1:0", "--metrics", "9464"});
  EXPECT_EQ(server.wait_exit(10s), 2);
  EXPECT_NE(server.err().find("--metrics"), std::string::npos) << server.err();
}

}  // namespace
}  // namespace fib::testing
