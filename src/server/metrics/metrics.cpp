#include "fib/server/metrics.h"

#include <pthread.h>
#include <signal.h>

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "fib/net/socket.h"
#include "fib/net/thread_wake.h"
#include "fib/server/server.h"
#include "metrics_collector.h"

#ifdef FIB_SERVER_TSAN
// Debian's civetweb is built without REENTRANT_TIME: the Date header of its
// error responses (a header timeout's 400, a body's 413) comes from gmtime(),
// whose one static result workers answering at the same moment both write.
// At worst a garbled Date header, in civetweb's code: not reported.
extern "C" const char* __tsan_default_suppressions() { return "race_top:gmtime\n"; }
#endif

namespace fib {

// The exposer's threads, civetweb's listener and workers, each of which
// looks at civetweb's stop flag only between polls of up to 2 s: a stop
// wakes them (fib/net/thread_wake.h) instead of waiting for the polls to end.
class ExposerThreads {
 public:
  void add(pthread_t thread) {
    const std::lock_guard lock(mutex_);
    threads_.push_back(thread);
  }
  void remove(pthread_t thread) {
    const std::lock_guard lock(mutex_);
    std::erase_if(threads_, [&](pthread_t t) { return pthread_equal(t, thread) != 0; });
  }
  // A thread leaves the list before it ends (and blocks here until a wake
  // in progress is done), so every thread woken is alive.
  void wake_all() {
    const std::lock_guard lock(mutex_);
    for (const pthread_t thread : threads_) wake(thread);
  }

 private:
  std::mutex mutex_;
  std::vector<pthread_t> threads_;
};

namespace {

// The exposer's web server, civetweb (Debian 12's 1.15), serves each
// connection on one worker thread from its first byte to its last, and
// queues those that find every worker busy, first come first served. A
// client that sends its request slowly holds its worker until the header
// timeout, so there are more workers than slow clients a scrape must get
// past: it finds one free while fewer than kExposerWorkers are connected,
// and each further kExposerWorkers delay it by at most 2 x kHeaderTimeout.
// An idle worker waits on a condition variable: no CPU, and a few pages of
// stack (128 KiB reserved, fib_server's thread stack size) and of request
// buffer (max_request_size, 16 KiB reserved).
constexpr int kExposerWorkers = 128;
// How long a client has to send its request's headers (request_timeout_ms).
// civetweb compares the time since its first read with this after every
// read, and a read waits up to this long: a client trickling bytes holds a
// worker for at most twice as long. Connections carry one request each
// (enable_keep_alive no), so that is all one can hold.
constexpr std::chrono::milliseconds kHeaderTimeout{1000};
// How often the destructor wakes the exposer's threads while they stop.
constexpr std::chrono::milliseconds kStopWakeInterval{5};

// Which ExposerThreads a civetweb context's threads join: civetweb calls
// init_context on the thread starting the exposer, before any of the
// context's threads start, and exit_context once they have all ended.
std::mutex contexts_mutex;
std::map<const mg_context*, ExposerThreads*> contexts;  // guarded by contexts_mutex
thread_local ExposerThreads* starting = nullptr;        // the endpoint being constructed on this thread

void on_context_start(const mg_context* context) {
  const std::lock_guard lock(contexts_mutex);
  contexts[context] = starting;
}

void on_context_end(const mg_context* context) {
  const std::lock_guard lock(contexts_mutex);
  contexts.erase(context);
}

// Takes a civetweb thread off its list when it ends, whichever way it ends.
struct Registration {
  ExposerThreads* threads = nullptr;
  Registration() = default;
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() {
    if (threads != nullptr) threads->remove(pthread_self());
  }
};
thread_local Registration registration;

void* on_thread_start(const mg_context* context, int /*thread_type*/) {
  ExposerThreads* threads = nullptr;
  {
    const std::lock_guard lock(contexts_mutex);
    const auto found = contexts.find(context);
    if (found != contexts.end()) threads = found->second;
  }
  if (threads != nullptr) {
    // The exposer's threads start with every signal blocked. A SIGUSR1 from
    // outside the process that lands on one of them (rather than on the
    // main thread, which the kernel prefers) would end the request it is in.
    accept_thread_wake();
    threads->add(pthread_self());
    registration.threads = threads;
  }
  return nullptr;
}

// A scrape has no body. civetweb reads the rest of a request's body before
// closing its connection, for as long as bytes keep coming: a client
// trickling one would hold a worker as long as it liked. Such a request is
// answered 413 and its connection closed without reading the body.
int refuse_bodies(mg_connection* connection) {
  if (mg_get_request_info(connection)->content_length <= 0 && mg_get_header(connection, "Transfer-Encoding") == nullptr)
    return 0;  // on to the exposer's handler
  mg_send_http_error(connection, 413, "%s", "a request for metrics has no body");
  return 413;  // handled: civetweb closes the connection (an error response always does)
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(const HostPort& where, Server& server)
    : collector_(make_server_collector(server)), threads_(std::make_unique<ExposerThreads>()) {
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
  // The exposer's threads take no signals but the wake-up (on_thread_start):
  // SIGINT and SIGTERM are for StopSignals' watcher.
  install_thread_wake();
  CivetCallbacks callbacks;
  callbacks.init_context = on_context_start;
  callbacks.exit_context = on_context_end;
  callbacks.init_thread = on_thread_start;
  callbacks.begin_request = refuse_bodies;
  const std::vector<std::string> options{
      "listening_ports",    ip.empty() ? std::to_string(where.port) : fmt::format("{}:{}", ip, where.port),
      "num_threads",        std::to_string(kExposerWorkers),
      "request_timeout_ms", std::to_string(kHeaderTimeout.count()),
      "enable_keep_alive",  "no"};
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  starting = threads_.get();
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options, &callbacks);
  } catch (const std::exception& e) {
    starting = nullptr;
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw std::runtime_error(fmt::format("--metrics: cannot listen on {}: {}", name, e.what()));
  }
  starting = nullptr;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  exposer_->RegisterCollectable(collector_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  url_ = fmt::format("http://{}:{}/metrics", ip.empty() ? "0.0.0.0" : ip,
                     ports.empty() ? where.port : static_cast<std::uint16_t>(ports.front()));
}

// civetweb's stop (mg_stop) sets its stop flag, then waits for every thread
// to see it, which each does between polls of up to 2 s: the listener's for
// a connection, a worker's for the bytes of a request (up to kHeaderTimeout
// then). Woken from those polls until the stop has ended, they see it at once.
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
  while (!stopped.load()) {
    threads_->wake_all();
    std::this_thread::sleep_for(kStopWakeInterval);
  }
  stopping.join();
}

}  // namespace fib
