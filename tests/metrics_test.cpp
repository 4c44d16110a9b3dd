// Covers --metrics: a real fib_server process serving Prometheus's text
// format over HTTP, scraped with a plain socket, its counters checked
// against what the test's clients were sent; slow clients and a stop; and
// the start-up failures.
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
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
#include "metrics_server.h"
#include "modes.h"
#include "test_client.h"

namespace fib::testing {
namespace {

using Clock = std::chrono::steady_clock;

// How long the metrics endpoint gives a client for its request's headers
// (kHeaderTimeout in src/server/metrics/metrics.cpp), and how many slow clients it
// serves a scrape past without delay (kExposerWorkers there, less one).
constexpr auto kHeaderTimeout = 1s;
constexpr int kSlowClientsWithstood = 127;

// What `http` receives until the server closes the connection, or until
// `give_up`: whether it was closed, and when the last byte or the close came.
struct Received {
  std::string text;
  bool closed = false;
  Clock::time_point at;
  std::string status_line() const { return text.substr(0, text.find("\r\n")); }
};
Received read_to_end(Client& http, Clock::time_point give_up) {
  Received received;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now());
    pollfd p{http.fd(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buffer[65536];
    const ssize_t n = ::recv(http.fd(), buffer, sizeof buffer, 0);
    received.at = Clock::now();
    if (n <= 0) {
      received.closed = true;
      break;
    }
    received.text.append(buffer, static_cast<std::size_t>(n));
  }
  return received;
}

// GET /metrics, given up after `limit`: the status line ("" if none came)
// and how long the whole response took (`limit` if it did not end).
std::pair<std::string, Seconds> timed_scrape(std::uint16_t port, std::chrono::milliseconds limit) {
  const Clock::time_point start = Clock::now();
  Client http(port);
  http.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  const Received response = read_to_end(http, start + limit);
  return {response.status_line(), response.closed ? Seconds(response.at - start) : Seconds(limit)};
}

// Clients that send a request's headers one byte at a time and never finish
// them, at a byte per `interval` each, from a thread of their own. One the
// server hangs up on (its header timeout) connects again at once.
class SlowClients {
 public:
  SlowClients(std::uint16_t port, int count, std::chrono::milliseconds interval) : port_(port) {
    for (int i = 0; i < count; ++i) clients_.push_back({connect_tcp({"127.0.0.1", port}, kConnectTimeout)});
    trickler_ = std::thread([this, interval] {
      while (!done_.load()) {
        for (Slow& client : clients_) trickle(client);
        std::this_thread::sleep_for(interval);
      }
    });
  }
  ~SlowClients() {
    done_.store(true);
    trickler_.join();
  }
  SlowClients(const SlowClients&) = delete;
  SlowClients& operator=(const SlowClients&) = delete;

  // How many of the clients the server has hung up on so far, at least once.
  int hung_up_on() const { return hung_up_on_.load(); }

 private:
  struct Slow {
    Fd fd;
    std::size_t sent = 0;
    bool hung_up_on = false;
  };
  static constexpr std::chrono::milliseconds kConnectTimeout{2000};
  static constexpr std::string_view kHeaders =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: a-very-slow-client/1.0\r\nX-Padding: "
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

  void trickle(Slow& client) {
    pollfd p{client.fd.get(), POLLIN, 0};  // an answer (400) or the end of the stream: hung up on
    const bool ended = ::poll(&p, 1, 0) > 0;
    if (ended || client.sent == kHeaders.size() ||
        ::send(client.fd.get(), kHeaders.data() + client.sent, 1, MSG_NOSIGNAL) != 1) {
      if (ended && !client.hung_up_on) {
        client.hung_up_on = true;
        hung_up_on_.fetch_add(1);
      }
      try {
        client = {connect_tcp({"127.0.0.1", port_}, kConnectTimeout), 0, client.hung_up_on};
      } catch (const std::exception&) {  // tried again next round
      }
      return;
    }
    ++client.sent;
  }

  std::uint16_t port_;
  std::vector<Slow> clients_;
  std::atomic<bool> done_{false};
  std::atomic<int> hung_up_on_{0};
  std::thread trickler_;
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
    client.send(std::string(kMaxRequestLineBytes + 10, '1'));
    const std::optional<std::string> line = client.read_line();
    ASSERT_TRUE(line.has_value());
    EXPECT_EQ(line->rfind("error: ", 0), 0u) << *line;
    EXPECT_TRUE(client.read_eof());
  }
  // Settled: a connection is counted as ended a moment before it stops
  // counting as open (the coroutine mode closes its socket in between).
  const Samples samples = server.scrape_until([](const Samples& s) {
    return holds(s, R"(fib_server_connections_ended_total{reason="line_too_long"})", 1) &&
           holds(s, R"(fib_server_connections_ended_total{reason="closed"})", 1) &&
           holds(s, "fib_server_connections_open", 0);
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
  EXPECT_EQ(samples.at(R"(fib_server_connections_refused_total{reason="no_memory"})"), 0);
  EXPECT_EQ(samples.at("fib_server_connections_accepted_total"), 2);
  EXPECT_EQ(samples.at("fib_server_connections_open"), 1);
}

// While a slow request runs, the thread serving it (thread mode) or a
// worker (modes with event loops) shows as busy.
TEST_P(ConcurrentMetricsTest, BusyThreadsShowWhileASlowRequestRuns) {
  MetricsServer server(args({"127.0.0.1:0"}));
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  const std::string busy =
      info(mode()).event_loops ? "fib_server_workers_busy" : R"(fib_server_connection_threads{state="busy"})";
  EXPECT_EQ(server.scrape().at(busy), 0);
  Client client(server.port());
  client.send("42\n");  // a few hundred milliseconds of work
  const Samples samples = server.scrape_until([&](const Samples& s) { return holds(s, busy, 1); });
  EXPECT_EQ(samples.at(busy), 1);
  EXPECT_EQ(
      server
          .scrape_until([](const Samples& s) { return holds(s, R"(fib_server_slow_requests{state="computing"})", 1); })
          .at(R"(fib_server_slow_requests{state="computing"})"),
      1);
  EXPECT_EQ(samples.at("fib_server_max_computing"), static_cast<double>(usable_cpus()));
  EXPECT_EQ(client.read_line(30s), std::to_string(fib_iterative(42)));
  if (info(mode()).event_loops) {
    EXPECT_GT(samples.at("fib_server_event_loop_cpu_seconds_total"), 0);
    EXPECT_EQ(samples.at("fib_server_workers"), static_cast<double>(usable_cpus()));
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, MetricsTest, all_modes(), mode_name);
INSTANTIATE_TEST_SUITE_P(Modes, ConcurrentMetricsTest, concurrent_modes(), mode_name);

// A hundred clients sending their headers a byte every half second, each
// connecting again when cut off, never hold up a scrape by more than the
// header timeout: there are workers for them all and one over.
TEST(Metrics, SlowClientsDoNotHoldUpScrapes) {
  constexpr int kSlowClients = 100;
  static_assert(kSlowClients <= kSlowClientsWithstood);
  MetricsServer server({"127.0.0.1:0"});
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  SlowClients slow(server.metrics_port(), kSlowClients, 500ms);
  std::this_thread::sleep_for(300ms);  // connected and served (or queued) before the first scrape
  const Clock::time_point until = Clock::now() + 3 * kHeaderTimeout;  // past the first hang-ups
  int scrapes = 0;
  while (Clock::now() < until || slow.hung_up_on() < kSlowClients) {
    const auto [status, took] = timed_scrape(server.metrics_port(), kHeaderTimeout + 2s);
    ASSERT_EQ(status.rfind("HTTP/1.1 200", 0), 0u) << "scrape " << scrapes << " after " << took.count() << " s";
    EXPECT_LE(took, kHeaderTimeout + 1s) << "scrape " << scrapes;
    ++scrapes;
    if (Clock::now() > until + 4 * kHeaderTimeout) break;  // bounded, whatever the hang-ups
    std::this_thread::sleep_for(100ms);
  }
  // Each slow client was cut off by the header timeout (a trickle holds a
  // worker at most twice that long).
  EXPECT_EQ(slow.hung_up_on(), kSlowClients);
}

// A request with a body is answered 413 and its connection closed without
// the body being read: civetweb would read it for as long as it trickled in.
TEST(Metrics, ARequestWithABodyIsRefusedUnread) {
  MetricsServer server({"127.0.0.1:0"});
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  for (const std::string headers : {"Content-Length: 100000", "Transfer-Encoding: chunked"}) {
    Client http(server.metrics_port());
    const Clock::time_point start = Clock::now();
    http.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n\r\n");  // and no body yet
    const Received response = read_to_end(http, start + 5s);
    EXPECT_EQ(response.status_line().rfind("HTTP/1.1 413", 0), 0u) << headers << ": " << response.status_line();
    EXPECT_TRUE(response.closed) << headers << ": the connection stayed open, waiting for the body";
    EXPECT_LT(response.at - start, 500ms) << headers;
  }
}

// A stop with clients connected to the metrics port, silent ones and one
// halfway through its headers, is as quick as one without: civetweb's
// threads, which otherwise see the stop only between polls of up to 2 s,
// are woken. (One halfway client only: two would get their 400 responses
// from two workers at once, whose gmtime() race in civetweb ThreadSanitizer
// takes 0.2 s or more to symbolize before suppressing it, metrics.cpp.)
TEST(Metrics, StopIsQuickWithMetricsClientsConnected) {
  MetricsServer server({"127.0.0.1:0"});
  ASSERT_NE(server.metrics_port(), 0) << server.log();
  std::vector<Client> silent;
  for (int i = 0; i < 4; ++i) silent.emplace_back(server.metrics_port());
  Client halfway(server.metrics_port());
  halfway.send("GET /metr");
  std::this_thread::sleep_for(200ms);  // the workers are waiting for more
  const auto [status, took] = server.stop(10s);
  EXPECT_EQ(status, 0) << server.log();
  // About 0.03 s, as without --metrics; before, the rest of civetweb's 2 s
  // poll (1.8 s), or of the 1 s header timeout without the wake-up (0.8 s).
  EXPECT_LT(took, 500ms) << server.log();
}

// The uring mode's receives take their buffers from a ring of 1,024 per
// loop. While the server is stopped (SIGSTOP), 1,500 clients connect and
// each sends a pipelined batch; when it goes on, its one loop accepts them
// all and arms their receives in one submission, and each finds its bytes
// waiting: more receives take a buffer at once than there are buffers.
// Those that find none wait for the next round, and every request is still
// answered, in order.
TEST(Metrics, UringReceivesShortOfBuffersWaitAndLoseNothing) {
  struct RestoreLimit {  // 1,500 clients in this process, and as many connections in the server
    rlimit saved{};
    ~RestoreLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
  } restore;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &restore.saved), 0);
  const rlimit raised{restore.saved.rlim_max, restore.saved.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
  MetricsServer server({"127.0.0.1:0", "--mode", "uring", "--threads", "1"});
  std::string batch;
  std::vector<std::string> expected;
  for (unsigned n = 0; n < 40; ++n) {
    batch += std::to_string(n % 25) + "\n";
    expected.push_back(std::to_string(fib_iterative(n % 25)));
  }
  constexpr int kConnections = 1500;  // more than the loop's buffers, fewer than the listen backlog
  server.signal(SIGSTOP);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    clients.back()->send(batch);
  }
  server.signal(SIGCONT);
  for (int i = 0; i < kConnections; ++i)
    ASSERT_EQ(clients[i]->read_lines(expected.size()), expected) << "connection " << i;
  EXPECT_GT(server.scrape().at("fib_server_receive_buffer_shortages_total"), 0) << "no receive was short of a buffer";
}

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
