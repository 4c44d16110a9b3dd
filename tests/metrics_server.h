// fib_server as a child process with --metrics on a free port, and what its
// metrics endpoint reports: how a test outside the process observes what the
// server is doing (a slow request computing, a connection open) instead of
// sleeping and hoping.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.h"
#include "test_client.h"

namespace fib::testing {

using Samples = std::map<std::string, double>;  // "name{labels}" -> value
using Seconds = std::chrono::duration<double>;

// The sample of slow requests computing now, in every mode.
inline const std::string kComputing = R"(fib_server_slow_requests{state="computing"})";

// True when `samples` has `name` with that value.
inline bool holds(const Samples& samples, const std::string& name, double value) {
  const auto found = samples.find(name);
  return found != samples.end() && found->second == value;
}

// fib_server with --metrics on a free port, and its metrics endpoint;
// started by `launcher` when one is given (a program and its first
// arguments, timeout(1) say), which signal() then signals.
class MetricsServer {
 public:
  explicit MetricsServer(std::vector<std::string> args, std::vector<std::string> launcher = {})
      : process_(launcher.empty() ? FIB_SERVER_BIN : launcher.front(),
                 launched(launcher, with_metrics(std::move(args)))) {
    port_ = process_.wait_for_listening_port();
    std::smatch match;
    const std::string log = process_.err();
    if (std::regex_search(log, match, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)")))
      metrics_port_ = static_cast<std::uint16_t>(std::stoi(match[1]));
  }
  ~MetricsServer() {
    if (!stopped_) stop(10s);
  }
  // SIGTERM, then the exit status (nullopt if still running after
  // `timeout`) and how long after the signal the process had ended.
  std::pair<std::optional<int>, Seconds> stop(std::chrono::milliseconds timeout) {
    stopped_ = true;
    const auto start = std::chrono::steady_clock::now();
    process_.signal(SIGTERM);
    const std::optional<int> status = process_.wait_exit(timeout);
    return {status, std::chrono::steady_clock::now() - start};
  }
  std::uint16_t port() const { return port_; }
  std::uint16_t metrics_port() const { return metrics_port_; }
  void signal(int number) { process_.signal(number); }
  // The exit status, or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const std::optional<int> status = process_.wait_exit(timeout);
    if (status) stopped_ = true;
    return status;
  }
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
    Samples samples;
    eventually([&] {
      samples = scrape();
      return done(samples);
    });
    return samples;
  }
  // Until the server reports `name` at `value` (at most a few seconds): whether it did.
  bool reports(const std::string& name, double value) const {
    return eventually([&] { return holds(scrape(), name, value); });
  }

 private:
  static std::vector<std::string> with_metrics(std::vector<std::string> args) {
    args.insert(args.end(), {"--metrics", "127.0.0.1:0"});
    return args;
  }
  // The launcher's arguments, then fib_server and its own.
  static std::vector<std::string> launched(std::vector<std::string> launcher, const std::vector<std::string>& args) {
    if (launcher.empty()) return args;
    launcher.erase(launcher.begin());
    launcher.push_back(FIB_SERVER_BIN);
    launcher.insert(launcher.end(), args.begin(), args.end());
    return launcher;
  }
  ChildProcess process_;
  std::uint16_t port_ = 0;
  std::uint16_t metrics_port_ = 0;
  bool stopped_ = false;
};

}  // namespace fib::testing
