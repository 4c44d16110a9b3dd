// --metrics: the server's statistics for Prometheus at http://ADDRESS/metrics,
// in its text format, served by prometheus-cpp's pull exposer. Nothing is
// counted here: a scrape reads Server::stats(), which adds up the counters
// each connection (or event loop) keeps, so the request path never sees it.
#pragma once

#include <memory>
#include <string>

#include "fib/core/address.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace fib {

class Server;
class ExposerThreads;

class MetricsEndpoint {
 public:
  // Listens on `where`, an IPv4 address or a host name with one ("localhost"),
  // or every IPv4 interface for an empty host (Debian 12's civetweb, under
  // the exposer, has no IPv6), and serves `server`'s statistics until
  // destroyed, from threads of its own: 128 workers, each client given 1 s
  // for its request's headers (metrics.cpp says why). Throws
  // std::runtime_error saying why when it cannot: "--metrics: cannot listen
  // on 127.0.0.1:9464: bind: Address already in use".
  MetricsEndpoint(const HostPort& where, Server& server);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // "http://127.0.0.1:9464/metrics", with the port bound when 0 was asked.
  const std::string& url() const { return url_; }

 private:
  std::shared_ptr<prometheus::Collectable> collector_;
  std::unique_ptr<ExposerThreads> threads_;  // outlives the exposer's threads
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string url_;
};

}  // namespace fib
