#include "fib/server/server.h"

#include <sched.h>

#include <algorithm>
#include <limits>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "compute_gate.h"
#include "connection_book.h"
#include "engine.h"
#include "fib/core/plural.h"
#include "fib/net/thread_wake.h"
#include "fib/server/async_log.h"
#include "rules.h"

namespace fib {

namespace {

// Descriptors kept back from connections: the listener, standard streams,
// log files.
constexpr std::uint64_t kReservedDescriptors = 16;

}  // namespace

unsigned usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
  return std::max(1U, std::thread::hardware_concurrency());
}

unsigned default_max_connections() {
  const std::uint64_t limit = descriptor_limit();
  return static_cast<unsigned>(std::clamp<std::uint64_t>(
      limit > kReservedDescriptors ? limit - kReservedDescriptors : 1, 1, std::numeric_limits<unsigned>::max()));
}

Server::Server(const ServerConfig& config)
    : config_(config),
      handler_(config.algorithm, config.max_n != 0 ? config.max_n : default_max_n(config.algorithm)),
      stop_(std::make_unique<StopState>()),
      gate_(std::make_unique<ComputeGate>(config.max_computing.value_or(usable_cpus()))),
      rules_(std::make_unique<ConnectionRules>(
          ConnectionRules{.stop = stop_.get(), .idle = {config.idle_timeout}, .gate = gate_.get()})),
      book_(std::make_unique<ConnectionBook>()) {
  listener_ = listen_tcp(config.address, &local_);
  // Inherited by every accepted socket (Linux copies it when it clones the
  // listening socket), which saves a system call per connection: every
  // reply is a small write the client waits for.
  set_no_delay(listener_.get());
  context_ = std::make_unique<EngineContext>(EngineContext{.config = config_,
                                                           .handler = handler_,
                                                           .rules = *rules_,
                                                           .book = *book_,
                                                           .listener = listener_.get(),
                                                           .local = local_,
                                                           .stop_server = [this] { stop(); }});
  engine_ = make_engine(config_.mode, *context_);
  if (config_.max_connections != 0) {
    book_->set_limit(config_.max_connections);
  } else {
    const unsigned limit = default_max_connections(), held = engine_->descriptors_held();
    book_->set_limit(limit > held ? limit - held : 1);
  }
  // In every mode, so that a SIGUSR1 from outside never ends the process.
  install_thread_wake();
}

Server::~Server() { stop(); }

unsigned Server::max_computing() const { return gate_->limit(); }

void Server::log_listening() const {
  const unsigned computing = gate_->limit(), most = book_->limit();
  const std::string slow = computing == 0 ? std::string("no limit on slow requests at once")
                                          : fmt::format("{} slow request{} at once", computing, plural_s(computing));
  log_whatever_the_level(fmt::format("listening on {} ({} mode{}, {} fib, n up to {}, at most {} connection{}, {})",
                                     local_.to_string(), to_string(config_.mode), engine_->describe(),
                                     fib::to_string(handler_.algorithm()), handler_.max_n(), most, plural_s(most),
                                     slow));
}

void Server::run() {
  log_listening();
  // Enforces a stop's timeout and logs the statistics.
  std::jthread supervisor([this] { supervise(); });
  try {
    engine_->run();
  } catch (...) {
    stop();  // whatever failed, the supervisor ends
    finished_.release();
    throw;
  }
  finished_.release();
}

ServerStats Server::stats() const {
  ServerStats totals;
  engine_->add_to(totals);
  totals.computing = gate_->running();
  totals.waiting_to_compute = gate_->waiting();
  book_->add_to(totals);  // last: accepted is never less than what it counts
  return totals;
}

}  // namespace fib
