// fib_server: parses the command line, sets up logging, hands the config to
// the library.
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "fib/cli/options.h"
#include "fib/cli/server_options.h"
#include "fib/core/request_handler.h"
#include "fib/net/stop_signals.h"
#include "fib/server/async_log.h"
#include "fib/server/metrics.h"
#include "fib/server/server.h"

namespace {

// How long the exit waits for stderr to take the last log lines.
constexpr std::chrono::milliseconds kLogFlushTimeout{500};

// The stack of every thread fib_server starts (one per connection in thread
// mode), instead of glibc's default of RLIMIT_STACK (8 MiB). The deepest a
// connection thread was seen to reach is 12 KiB (fib(45) recurses 45 frames
// deep; error replies and logging go a little further), so this leaves ten
// times that. Resident memory is the same either way (only touched pages
// count); what shrinks is the address space reserved per connection: 10,000
// connections reserve 1.3 GiB instead of 80 GiB, which is what counts under
// strict overcommit (vm.overcommit_memory=2) or an RLIMIT_AS, and glibc's
// cache of freed stacks (40 MiB) holds 320 of them instead of 5.
constexpr std::size_t kThreadStackBytes = std::size_t{128} * 1024;

// Gives every thread started from now on a stack of kThreadStackBytes.
// Not under ThreadSanitizer: it keeps hundreds of KiB of state per thread in
// static TLS, which glibc takes from the thread's stack.
bool use_small_thread_stacks() {
#ifdef FIB_SERVER_TSAN
  return true;
#else
  pthread_attr_t attributes;
  if (pthread_attr_init(&attributes) != 0) return false;
  const bool done =
      pthread_attr_setstacksize(&attributes, kThreadStackBytes) == 0 && pthread_setattr_default_np(&attributes) == 0;
  pthread_attr_destroy(&attributes);
  return done;
#endif
}

// Seconds, kept to the millisecond: 0 turns the feature off, anything else
// must be at least a millisecond (and at most a day).
const CLI::Validator kOffOrMilliseconds = fib::cli::decimal_between(0.001, 86400, "seconds", true);

// What the options read before it becomes a config: text and seconds, as given.
struct Arguments {
  std::string address = "127.0.0.1:25000";
  std::string mode = "thread";
  std::string algorithm = "recursive";
  double shutdown_timeout_s = 10.0;
  double idle_timeout_s = 300.0;
  double stats_interval_s = 0.0;
  std::string metrics_address;
};

// The table of modes as the options use it, read in one pass.
struct ModeChoices {
  std::string help;                          // --mode's: each mode and what it does
  std::vector<std::string> names;            // --mode's values
  std::vector<std::string_view> loop_modes;  // those with event loops, which take --threads and --workers
};

ModeChoices mode_choices() {
  ModeChoices choices;
  for (const fib::ModeInfo& row : fib::modes()) {
    choices.help += fmt::format("{}{}: {}", choices.help.empty() ? "" : "; ", row.name, row.help);
    choices.names.emplace_back(row.name);
    if (row.event_loops) choices.loop_modes.push_back(row.name);
  }
  return choices;
}

const fib::ModeInfo& mode_named(std::string_view name) {
  const auto modes = fib::modes();
  const auto row = std::find_if(modes.begin(), modes.end(), [&](const auto& m) { return m.name == name; });
  return row != modes.end() ? *row : fib::info(fib::Mode::thread);
}

void add_mode_options(CLI::App& app, Arguments& arguments, fib::ServerConfig& config, const ModeChoices& modes) {
  app.add_option("--mode", arguments.mode, modes.help)
      ->capture_default_str()
      ->type_name("MODE")
      ->check(fib::cli::quiet(CLI::IsMember(modes.names)));
  const std::string loop_modes = fmt::format("{} modes", fmt::join(modes.loop_modes, " and "));
  app.add_option("--threads", config.threads,
                 fmt::format("{}: event-loop threads, 1 to 1024 (default: the CPUs this process may use)", loop_modes))
      ->type_name("N")
      ->transform(fib::cli::whole_between(1, 1024));
  app.add_option("--workers", config.workers,
                 fmt::format("{}: threads computing slow requests (recursive n of {} or more), at a lower priority "
                             "than the loops, 1 to 1024 (default: the CPUs this process may use)",
                             loop_modes, fib::kSlowRecursiveN))
      ->type_name("N")
      ->transform(fib::cli::whole_between(1, 1024));
}

void add_computing_options(CLI::App& app, Arguments& arguments, fib::ServerConfig& config) {
  app.add_option("--algorithm", arguments.algorithm,
                 "recursive: the naive doubly recursive fib, deliberately CPU-bound; iterative: a loop")
      ->capture_default_str()
      ->type_name("ALGORITHM")
      ->check(fib::cli::quiet(CLI::IsMember({"recursive", "iterative"})));
  app.add_option("--max-n", config.max_n,
                 fmt::format("largest n answered; larger ones get an error line (default {} with recursive, {} with "
                             "iterative; at most {} with recursive, {} with iterative)",
                             fib::kDefaultMaxRecursive, fib::kMaxIndex, fib::kMaxRecursive, fib::kMaxIndex))
      ->type_name("N")
      ->transform(fib::cli::whole_between(1, fib::kMaxIndex));
  app.add_option("--max-computing", config.max_computing,
                 fmt::format("slow requests (recursive n of {} or more) computed at once, in every mode, 0 to 1024; "
                             "the others wait their turn in order, so that quick requests always find a CPU "
                             "(default: the CPUs this process may use; 0: no limit, as Go has none)",
                             fib::kSlowRecursiveN))
      ->type_name("N")
      ->transform(fib::cli::whole_between(0, 1024));
}

// Seconds that may be 0 (off), else at least a millisecond.
void add_off_or_seconds(CLI::App& app, const char* name, double& seconds, const char* help) {
  app.add_option(name, seconds, help)
      ->capture_default_str()
      ->type_name("SECONDS")
      ->check(fib::cli::quiet(kOffOrMilliseconds));
}

void add_connection_options(CLI::App& app, Arguments& arguments, fib::ServerConfig& config) {
  app.add_option("--shutdown-timeout", arguments.shutdown_timeout_s,
                 "seconds a stop lets requests already read run and their answers go out; past it, requests not "
                 "answered yet are given up (0 to 86400)")
      ->capture_default_str()
      ->type_name("SECONDS")
      ->check(fib::cli::quiet(fib::cli::decimal_between(0, 86400, "seconds")));
  app.add_option("--max-connections", config.max_connections,
                 "connections served at once; a client over the limit gets an error line and is closed (default: "
                 "the descriptor limit less 16; at most 10000000)")
      ->type_name("N")
      ->transform(fib::cli::whole_between(1, 10'000'000));
  add_off_or_seconds(app, "--idle-timeout", arguments.idle_timeout_s,
                     "seconds; a connection that completes no valid request, or cannot send its replies, for this "
                     "long is closed (0: never; else 0.001 to 86400)");
  add_off_or_seconds(app, "--stats-interval", arguments.stats_interval_s,
                     "seconds between statistics lines (connections open, accepted, refused, requests served, "
                     "req/s, errors), also logged at shutdown (0: none; else 0.001 to 86400)");
}

void add_output_options(CLI::App& app, Arguments& arguments, std::string& log_level) {
  app.add_option("--metrics", arguments.metrics_address,
                 "HOST:PORT or :PORT (every IPv4 interface) to serve Prometheus metrics on, at /metrics (for instance "
                 "127.0.0.1:9464; IPv4 only; port 0 picks a free port; default: none)")
      ->type_name("ADDRESS")
      ->check(fib::cli::host_port());
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->type_name("LEVEL")
      ->check(fib::cli::quiet(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"})));
}

// Once every option is read: the mode, looked up here and only here, and
// what fib::cli refuses in the options taken together.
void choose_mode_or_refuse(const CLI::App& app, const Arguments& arguments, fib::ServerConfig& config,
                           const ModeChoices& modes) {
  const fib::ModeInfo& mode = mode_named(arguments.mode);
  config.mode = mode.mode;
  const auto refusal = fib::cli::check_server_options({.mode = arguments.mode,
                                                       .event_loops = mode.event_loops,
                                                       .loop_modes = modes.loop_modes,
                                                       .threads_given = app.count("--threads") > 0,
                                                       .workers_given = app.count("--workers") > 0,
                                                       .algorithm = arguments.algorithm,
                                                       .max_n = config.max_n});
  if (refusal) throw CLI::ValidationError(refusal->option, refusal->message);
}

// The rest of the config, from what the options read (already checked).
void fill_config(const Arguments& arguments, fib::ServerConfig& config, std::optional<fib::HostPort>& metrics) {
  const auto milliseconds = [](double seconds) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(fib::from_seconds(seconds));
  };
  config.address = fib::parse_host_port(arguments.address);
  config.algorithm = *fib::algorithm_from_string(arguments.algorithm);
  config.shutdown_timeout = milliseconds(arguments.shutdown_timeout_s);
  config.idle_timeout = milliseconds(arguments.idle_timeout_s);
  config.stats_interval = milliseconds(arguments.stats_interval_s);
  if (!arguments.metrics_address.empty()) metrics = fib::parse_host_port(arguments.metrics_address);
}

// Reads the command line into `config` and `log_level`; returns the exit
// status to leave with (0 after --help or --version, 2 for bad usage), or -1
// to carry on.
int parse_options(int argc, char** argv, fib::ServerConfig& config, std::string& log_level,
                  std::optional<fib::HostPort>& metrics) {
  Arguments arguments;
  const ModeChoices modes = mode_choices();
  CLI::App app{
      "TCP Fibonacci server. Send a number n and a newline; the answer is fib(n) and a newline, or a line starting "
      "\"error: \". A thread per connection (the default), one connection at a time, or coroutines on event loops "
      "(epoll or io_uring). "
      "SIGINT, SIGTERM or SIGHUP stop it gracefully. Exit status: 0 stopped by a signal; 1 could not start (the "
      "message says why) or a second signal came; 2 bad usage."};
  fib::cli::add_version_and_address(app, "fib_server", arguments.address, "ADDRESS",
                                    "HOST:PORT, [IPV6]:PORT or :PORT (all interfaces); port 0 picks a free port");
  add_mode_options(app, arguments, config, modes);
  add_computing_options(app, arguments, config);
  add_connection_options(app, arguments, config);
  add_output_options(app, arguments, log_level);
  app.callback([&] { choose_mode_or_refuse(app, arguments, config, modes); });
  if (const int status = fib::cli::parse(app, argc, argv); status >= 0) return status;
  fill_config(arguments, config, metrics);
  return -1;
}

}  // namespace

// What can fail at run time is caught below; anything else (out of memory
// while parsing the command line) may end the program as an uncaught
// exception does.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  fib::ServerConfig config;
  std::string log_level = "info";
  std::optional<fib::HostPort> metrics_address;
  if (const int status = parse_options(argc, argv, config, log_level, metrics_address); status >= 0) return status;
  const bool small_stacks = use_small_thread_stacks();  // before the first thread starts

  fib::AsyncLog log("fib_server", spdlog::level::from_str(log_level));
  // A stderr nobody reads must not hold up the exit either: what it takes
  // within a bound is written, then the process leaves without waiting on it.
  const auto flush_or_exit = [&log](int status) {
    if (!log.flush(kLogFlushTimeout)) std::_Exit(status);
  };

  // A peer that has gone away must not kill the process; sends also pass MSG_NOSIGNAL.
  std::signal(SIGPIPE, SIG_IGN);
  // SIGUSR2 means nothing here: one sent by mistake must not end the server
  // (SIGQUIT keeps its default, an exit at once with a core dump, as the
  // way out when a stop is not wanted).
  std::signal(SIGUSR2, SIG_IGN);

  try {
    spdlog::info("descriptor limit {}", fib::raise_descriptor_limit());
    if (!small_stacks)
      spdlog::warn("threads keep the default stack size: setting {} KiB failed", kThreadStackBytes / 1024);
    fib::Server server(config);
    // Blocks SIGINT, SIGTERM and SIGHUP before run() starts any thread or logs
    // "listening on".
    // The line first: it costs microseconds, while the stop's first steps
    // share the CPUs with whatever the server computes.
    fib::StopSignals signals([&server](int signal) {
      spdlog::info(
          "{} received: answering what was read, then exiting (another signal 100 ms or more later exits at once)",
          strsignal(signal));
      server.stop();
    });
    // Its threads start with every signal blocked; it stops serving
    // once the server has stopped.
    std::optional<fib::MetricsEndpoint> metrics;
    if (metrics_address) {
      metrics.emplace(*metrics_address, server);
      fib::log_whatever_the_level(fmt::format("metrics on {}", metrics->url()));
    }
    server.run();
  } catch (const std::exception& e) {
    // Straight to stderr, after what was logged before it: a fatal error is
    // shown whatever --log-level says.
    flush_or_exit(1);
    fmt::print(stderr, "fib_server: {}\n", e.what());
    if (std::string_view(e.what()).ends_with(std::strerror(EADDRINUSE)))
      fmt::print(stderr,
                 "fib_server: another program listens there (`ss -ltnp` names it): stop it, or choose another port "
                 "(port 0 picks a free one)\n");
    return 1;
  }
  spdlog::info("stopped");
  flush_or_exit(0);
  return 0;
}
