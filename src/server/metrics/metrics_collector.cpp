#include "metrics_collector.h"

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fib/server/server.h"

namespace fib {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

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
                      const std::array<std::string_view, N>& values, const std::array<Count, N>& counts) {
  std::vector<ClientMetric> samples;
  for (std::size_t i = 0; i < N; ++i)
    samples.push_back(sample(type, static_cast<double>(counts[i]), {{label, std::string(values[i])}}));
  return family(std::move(name), std::move(help), type, std::move(samples));
}

// A table's labels, and "label (help), label, ..." for the help text.
template <typename Table>
auto labels(const Table& table) {
  std::array<std::string_view, std::tuple_size_v<Table>> values{};
  std::transform(table.begin(), table.end(), values.begin(), [](const auto& row) { return row.label; });
  return values;
}
template <typename Table>
std::string described(const Table& table) {
  std::string text;
  for (const auto& row : table) {
    if (!text.empty()) text += ", ";
    text += row.label;
    if (!row.help.empty()) text.append(" (").append(row.help).append(")");
  }
  return text;
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

void add_engine_families(const ServerStats& stats, std::vector<MetricFamily>& families) {
  if (stats.threads) {
    families.push_back(by_label("fib_server_connection_threads",
                                "Connection threads: busy serving a connection, or parked for the next one",
                                MetricType::Gauge, "state", std::array<std::string_view, 2>{"busy", "parked"},
                                std::array<std::uint64_t, 2>{stats.threads->busy, stats.threads->parked}));
  }
  if (stats.loops) {
    const ServerStats::Loops& loops = *stats.loops;
    const std::uint64_t busy = std::min<std::uint64_t>(loops.at_workers, loops.workers);
    families.push_back(
        one("fib_server_event_loops", "Event-loop threads (--threads)", MetricType::Gauge, loops.threads));
    families.push_back(one("fib_server_event_loop_cpu_seconds_total",
                           "CPU time the event-loop threads have used: its rate is how many are busy",
                           MetricType::Counter, static_cast<double>(loops.cpu_ns) / 1e9));
    families.push_back(one("fib_server_workers", "Threads computing slow requests (--workers)", MetricType::Gauge,
                           static_cast<double>(loops.workers)));
    families.push_back(one("fib_server_workers_busy", "Workers computing a slow request now", MetricType::Gauge,
                           static_cast<double>(busy)));
    families.push_back(one("fib_server_slow_requests_waiting", "Slow requests waiting for a free worker",
                           MetricType::Gauge, static_cast<double>(loops.at_workers - busy)));
    std::vector<ClientMetric> open;
    for (std::size_t i = 0; i < loops.open.size(); ++i)
      open.push_back(sample(MetricType::Gauge, static_cast<double>(loops.open[i]), {{"loop", std::to_string(i)}}));
    families.push_back(family("fib_server_event_loop_connections",
                              "Connections each event loop serves now, parked ones included (dealt to the loops in "
                              "turn as they are accepted)",
                              MetricType::Gauge, std::move(open)));
    families.push_back(one("fib_server_receive_buffer_shortages_total",
                           "Receives that found every buffer of their loop taken, and waited for the next round "
                           "(uring mode; 0 in coroutine mode)",
                           MetricType::Counter, static_cast<double>(loops.buffer_shortages)));
  }
}

// Gathers the server's statistics when Prometheus scrapes.
class ServerCollector : public prometheus::Collectable {
 public:
  explicit ServerCollector(const Server& server) : server_(server) {}

  std::vector<MetricFamily> Collect() const override {
    const ServerStats stats = server_.stats();
    std::vector<MetricFamily> families;
    families.push_back(family("fib_server_build_info", "Always 1; the labels say what this server is and does",
                              MetricType::Gauge,
                              {sample(MetricType::Gauge, 1,
                                      {{"version", FIB_SERVER_VERSION},
                                       {"mode", std::string(to_string(server_.config().mode))},
                                       {"algorithm", std::string(to_string(server_.config().algorithm))},
                                       {"max_n", std::to_string(server_.max_n())}})}));
    families.push_back(one("fib_server_connections_open", "Connections being served now", MetricType::Gauge,
                           static_cast<double>(stats.open)));
    families.push_back(one("fib_server_connections_accepted_total", "Connections accepted, refused ones included",
                           MetricType::Counter, static_cast<double>(stats.accepted)));
    families.push_back(by_label("fib_server_connections_refused_total",
                                "Connections refused with an error line, by reason: " + described(kRefusals),
                                MetricType::Counter, "reason", labels(kRefusals), stats.refused));
    families.push_back(by_label("fib_server_connections_ended_total",
                                "Connections served and closed, by reason: " + described(kEnds), MetricType::Counter,
                                "reason", labels(kEnds), stats.ended));
    families.push_back(one("fib_server_answers_total", "Requests answered with fib(n)", MetricType::Counter,
                           static_cast<double>(stats.replies.answers)));
    families.push_back(by_label("fib_server_error_lines_total",
                                "Requests answered with an error line, by kind (the last line of a connection "
                                "closed for idling or a stop aside)",
                                MetricType::Counter, "kind", labels(kErrorKindInfo), stats.replies.errors));
    families.push_back(service_time_histogram(stats.service_times));
    families.push_back(one("fib_server_max_computing",
                           "Slow requests computed at once at most (--max-computing; 0: no "
                           "limit)",
                           MetricType::Gauge, server_.max_computing()));
    families.push_back(by_label("fib_server_slow_requests", "Slow requests being computed, or waiting for their turn",
                                MetricType::Gauge, "state",
                                std::array<std::string_view, 2>{"computing", "waiting_turn"},
                                std::array<std::uint64_t, 2>{stats.computing, stats.waiting_to_compute}));
    add_engine_families(stats, families);
    return families;
  }

 private:
  const Server& server_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> make_server_collector(const Server& server) {
  return std::make_shared<ServerCollector>(server);
}

}  // namespace fib
