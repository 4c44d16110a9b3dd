#include "fib/server/metrics.h"

#include <pthread.h>
#include <signal.h>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "fib/net/socket.h"
#include "fib/server/server.h"

namespace fib {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// The label values of ConnectionResult::End and Refusal, in their order.
constexpr std::array<const char*, kConnectionEnds> kEndReasons{"closed", "failed",  "line_too_long",
                                                               "idle",   "stalled", "stopped"};
constexpr std::array<const char*, kRefusals> kRefusalReasons{"over_limit", "no_thread"};

// The exposer's web server (civetweb) answers scrapes from this many threads
// of its own, besides its listener's.
constexpr const char* kExposerThreads = "2";
// How the destructor wakes the exposer's listener: a connection every
// interval, for at most as long as the listener's poll waits.
constexpr std::chrono::milliseconds kStopPokeInterval{10};
constexpr std::chrono::seconds kStopPokesFor{2};

ClientMetric sample(MetricType type, double value, Labels labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter)
    metric.counter.value = value;
  else
    metric.gauge.value = value;
  return metric;
}

MetricFamily family(std::string name, std::string help, MetricType type, std::vector<ClientMetric> samples) {
  return {std::move(name), std::move(help), type, std::move(samples)};
}

MetricFamily one(std::string name, std::string help, MetricType type, double value) {
  return family(std::move(name), std::move(help), type, {sample(type, value)});
}

// One sample per label value, from counts in the same order.
template <std::size_t N, typename Count>
MetricFamily by_label(std::string name, std::string help, MetricType type, const char* label,
                      const std::array<const char*, N>& values, const std::array<Count, N>& counts) {
  std::vector<ClientMetric> samples;
  for (std::size_t i = 0; i < N; ++i)
    samples.push_back(sample(type, static_cast<double>(counts[i]), {{label, values[i]}}));
  return family(std::move(name), std::move(help), type, std::move(samples));
}

MetricFamily service_time_histogram(const ServiceTimes& times) {
  ClientMetric metric;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kServiceTimeBuckets; ++i) {
    cumulative += times.buckets[i];
    const double bound = i < kServiceTimeBounds.size() ? std::chrono::duration<double>(kServiceTimeBounds[i]).count()
                                                       : std::numeric_limits<double>::infinity();
    metric.histogram.bucket.push_back({cumulative, bound});
  }
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = static_cast<double>(times.sum_ns) / 1e9;
  return family("fib_server_request_duration_seconds",
                "Service time of each reply sent: from the receive that brought the last byte of its request to "
                "the reply handed to the kernel",
                MetricType::Histogram, {metric});
}

// Gathers the server's statistics when Prometheus scrapes.
class ServerCollector : public prometheus::Collectable {
 public:
  explicit ServerCollector(Server& server) : server_(server) {}

  std::vector<MetricFamily> Collect() const override {
    const ServerStats stats = server_.stats();
    const ServerConfig& config = server_.config();
    std::vector<MetricFamily> families;
    families.push_back(family("fib_server_build_info", "Always 1; the labels say what this server is and does",
                              MetricType::Gauge,
                              {sample(MetricType::Gauge, 1,
                                      {{"version", FIB_SERVER_VERSION},
                                       {"mode", std::string(to_string(config.mode))},
                                       {"algorithm", std::string(to_string(config.algorithm))},
                                       {"max_n", std::to_string(server_.max_n())}})}));
    families.push_back(one("fib_server_connections_open", "Connections being served now", MetricType::Gauge,
                           static_cast<double>(stats.open)));
    families.push_back(one("fib_server_connections_accepted_total", "Connections accepted, refused ones included",
                           MetricType::Counter, static_cast<double>(stats.accepted)));
    families.push_back(by_label("fib_server_connections_refused_total",
                                "Connections refused with an error line, by reason: over_limit "
                                "(--max-connections open), no_thread (no thread or memory for it)",
                                MetricType::Counter, "reason", kRefusalReasons, stats.refused));
    families.push_back(by_label("fib_server_connections_ended_total",
                                "Connections served and closed, by reason: closed (by the client), failed, "
                                "line_too_long, idle (--idle-timeout), stalled (the client stopped reading), "
                                "stopped (the server is stopping)",
                                MetricType::Counter, "reason", kEndReasons, stats.ended));
    families.push_back(one("fib_server_answers_total", "Requests answered with fib(n)", MetricType::Counter,
                           static_cast<double>(stats.replies.answers)));
    std::array<const char*, kErrorKinds> kinds{};
    for (std::size_t i = 0; i < kErrorKinds; ++i) kinds[i] = to_string(static_cast<ErrorKind>(i)).data();
    families.push_back(by_label("fib_server_error_lines_total",
                                "Requests answered with an error line, by kind (the last line of a connection "
                                "closed for idling or a stop aside)",
                                MetricType::Counter, "kind", kinds, stats.replies.errors));
    families.push_back(service_time_histogram(stats.service_times));
    if (config.mode == Mode::thread) {
      families.push_back(by_label("fib_server_connection_threads",
                                  "Connection threads: busy serving a connection, or parked for the next one",
                                  MetricType::Gauge, "state", std::array<const char*, 2>{"busy", "parked"},
                                  std::array<std::uint64_t, 2>{stats.threads_busy, stats.threads_parked}));
    }
    if (config.mode == Mode::coroutine) {
      const std::uint64_t workers = server_.workers();
      const std::uint64_t busy = std::min(stats.at_workers, workers);
      families.push_back(
          one("fib_server_event_loops", "Event-loop threads (--threads)", MetricType::Gauge, server_.event_loops()));
      families.push_back(one("fib_server_event_loop_cpu_seconds_total",
                             "CPU time the event-loop threads have used: its rate is how many are busy",
                             MetricType::Counter, static_cast<double>(stats.loop_cpu_ns) / 1e9));
      families.push_back(one("fib_server_workers", "Threads computing slow requests (--workers)", MetricType::Gauge,
                             static_cast<double>(workers)));
      families.push_back(one("fib_server_workers_busy", "Workers computing a slow request now", MetricType::Gauge,
                             static_cast<double>(busy)));
      families.push_back(one("fib_server_slow_requests_waiting", "Slow requests waiting for a free worker",
                             MetricType::Gauge, static_cast<double>(stats.at_workers - busy)));
    }
    return families;
  }

 private:
  Server& server_;
};

}  // namespace

MetricsEndpoint::MetricsEndpoint(const HostPort& where, Server& server)
    : collector_(std::make_shared<ServerCollector>(server)) {
  const std::string name = format_host_port(where.host, where.port);
  // Debian 12's civetweb, which serves the metrics, has no IPv6.
  if (where.host.find(':') != std::string::npos)
    throw std::runtime_error(
        fmt::format("--metrics: {} is not an IPv4 address: Debian 12's civetweb, which serves "
                    "the metrics, has no IPv6",
                    name));
  Endpoint bound;
  try {
    // Listening here first gives the reason a port cannot be had, and the
    // IPv4 address a host name stands for, in the main address's words.
    listen_tcp(where, &bound, AF_INET);  // closed at once: the exposer binds it again
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("--metrics: {}", e.what()));
  }
  std::string ip;  // empty: every IPv4 interface
  if (!where.host.empty()) {
    const std::string bound_name = bound.to_string();
    ip = bound_name.substr(0, bound_name.rfind(':'));
  }
  // The exposer's threads take no signals: SIGINT and SIGTERM are for
  // StopSignals' watcher, and a stop's wake-up signal for connection threads.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", ip.empty() ? std::to_string(where.port) : fmt::format("{}:{}", ip, where.port),
        "num_threads", kExposerThreads});
  } catch (const std::exception& e) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw std::runtime_error(fmt::format("--metrics: cannot listen on {}: {}", name, e.what()));
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  exposer_->RegisterCollectable(collector_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  listening_ = {ip.empty() ? "127.0.0.1" : ip, ports.empty() ? where.port : static_cast<std::uint16_t>(ports.front())};
  url_ = fmt::format("http://{}:{}/metrics", ip.empty() ? "0.0.0.0" : ip, listening_.port);
}

// civetweb's stop waits for its listener's poll to time out, up to 2 s:
// connections of our own, until the stop has ended, wake it at once.
MetricsEndpoint::~MetricsEndpoint() {
  std::atomic<bool> stopped{false};
  std::thread stopping;
  try {
    stopping = std::thread([&] {
      exposer_.reset();
      stopped.store(true);
    });
  } catch (const std::exception&) {  // no thread to be had: stop the slow way
    exposer_.reset();
    return;
  }
  const auto give_up = std::chrono::steady_clock::now() + kStopPokesFor;
  while (!stopped.load() && std::chrono::steady_clock::now() < give_up) {
    try {
      connect_tcp(listening_, kStopPokeInterval);
    } catch (const std::exception&) {  // refused: the listener is closed already
    }
    std::this_thread::sleep_for(kStopPokeInterval);
  }
  stopping.join();
}

}  // namespace fib
