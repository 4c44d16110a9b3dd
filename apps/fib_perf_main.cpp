// fib_perf: parses the command line, hands the config to the load
// generator, prints live lines and the summary.
#include <cstdio>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "fib/cli/options.h"
#include "fib/core/fib.h"
#include "fib/net/stop_signals.h"
#include "fib/perf/load_generator.h"
#include "fib/perf/report.h"
#include "fib/perf/warnings.h"

// The exit status when every answer was right but --rate was not kept: the
// figures describe a lighter load than the one asked for.
constexpr int kRateNotHeld = 3;
// The exit status when every answer was right but some connections got none
// while the others did: the figures describe fewer connections than asked for.
constexpr int kStarved = 4;

namespace {

// Reads the command line into `config` and `json`; returns the exit status
// to leave with (0 after --help or --version, 2 for bad usage), or -1 to
// carry on.
// NOLINTNEXTLINE(readability-function-size): long only for its option declarations
int parse_options(int argc, char** argv, fib::LoadConfig& config, bool& json) {
  std::string address = "127.0.0.1:25000";
  double duration = 0, rate = 0, warmup = 0, timeout = 10;
  std::uint64_t requests = 0;

  CLI::App app{
      "Load generator for fib_server. Closed loop by default (each connection sends its next request as soon as "
      "an answer comes back); open loop at a fixed total rate with --rate. Checks every answer. Runs until "
      "--duration or --requests is reached, whichever comes first, or until Ctrl-C. Exit status: 0 every answer "
      "right; 1 any error (wrong answers, error replies, timeouts, lost connections, the server going away "
      "mid-run); 2 bad usage; 3 no errors, but the --rate was not kept; 4 no errors, but some connections got no "
      "answer while the others did (a server that serves one connection at a time). Where several apply, 1 is "
      "given before 4, and 4 before 3."};
  fib::cli::add_version_and_address(app, "fib_perf", address, "HOST:PORT",
                                    "server to load: HOST:PORT, [IPV6]:PORT or :PORT");
  // Each option's type is named once (N, SECONDS, ...) and its range is in
  // its description: no label of CLI11's own ("UINT:UINT in [1 - 100000]").
  app.add_option("-c,--connections", config.connections, "connections, each with a thread of its own; 1 to 100000")
      ->capture_default_str()
      ->type_name("N")
      ->transform(fib::cli::whole_between(1, 100000));
  app.add_option("-n,--number", config.n,
                 fmt::format("the Fibonacci index sent in every request; 0 to {}", fib::kMaxIndex))
      ->capture_default_str()
      ->type_name("N")
      ->transform(fib::cli::whole_between(0, fib::kMaxIndex));
  app.add_option("-d,--duration", duration,
                 "seconds to measure (fractions allowed), after the warm-up; 0.001 to 10000000")
      ->type_name("SECONDS")
      ->check(fib::cli::quiet(fib::cli::decimal_between(0.001, 1e7, "seconds")));
  app.add_option("--requests", requests, "stop after this many measured requests are answered; 1 to 1000000000000")
      ->type_name("N")
      ->transform(fib::cli::whole_between(1, 1'000'000'000'000));
  app.add_option("--rate", rate,
                 "open loop: requests per second in total, spread evenly over the connections and over time; "
                 "latency counts from each request's scheduled time; 0.01 to 100000000")
      ->type_name("RATE")
      ->check(fib::cli::quiet(fib::cli::decimal_between(0.01, 1e8, "requests per second")));
  app.add_option("--pipeline", config.pipeline, "requests in flight per connection; 1 to 10000")
      ->capture_default_str()
      ->type_name("N")
      ->transform(fib::cli::whole_between(1, 10000));
  app.add_option("--warmup", warmup, "seconds of load applied but not counted; 0 to 86400")
      ->capture_default_str()
      ->type_name("SECONDS")
      ->check(fib::cli::quiet(fib::cli::decimal_between(0, 86400, "seconds")));
  app.add_option("--timeout", timeout, "seconds; a request unanswered this long counts as an error; 0.001 to 86400")
      ->capture_default_str()
      ->type_name("SECONDS")
      ->check(fib::cli::quiet(fib::cli::decimal_between(0.001, 86400, "seconds")));
  app.add_flag("--json", json, "print the summary as one JSON object on stdout; live lines go to stderr");
  if (const int status = fib::cli::parse(app, argc, argv); status >= 0) return status;

  config.target = fib::parse_host_port(address);
  if (duration > 0) config.duration = fib::from_seconds(duration);
  config.warmup = fib::from_seconds(warmup);
  config.timeout = fib::from_seconds(timeout);
  if (requests > 0) config.requests = requests;
  if (rate > 0) config.rate = rate;
  return -1;
}

}  // namespace

// What can fail at run time is caught below; anything else (out of memory
// while parsing the command line) may end the program as an uncaught
// exception does.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  fib::LoadConfig config;
  bool json = false;
  if (const int status = parse_options(argc, argv, config, json); status >= 0) return status;
  std::FILE* live = json ? stderr : stdout;

  try {
    fib::LoadGenerator generator(config);
    fib::StopSignals signals([&generator](int) { generator.stop(); });
    const fib::Summary summary = generator.run([live](const fib::IntervalReport& interval) {
      fmt::print(live, "{}\n", fib::format_interval(interval));
      std::fflush(live);
    });
    if (json) {
      fmt::print("{}\n", fib::format_summary_json(summary));
    } else {
      fmt::print("{}", fib::format_summary(summary));
    }
    // Errors (the server going away included) first, then connections left
    // unanswered, then the rate.
    if (!summary.clean()) return 1;
    if (summary.starved > 0) return kStarved;
    return fib::rate_held(summary) ? 0 : kRateNotHeld;
  } catch (const std::exception& e) {
    fmt::print(stderr, "fib_perf: {}\n", e.what());
    return 1;
  }
}
