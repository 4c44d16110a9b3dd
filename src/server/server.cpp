#include "fib/server/server.h"

#include <algorithm>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "fib/core/plural.h"
#include "fib/net/thread_wake.h"
#include "fib/server/async_log.h"
#include "server_parts.h"

namespace fib {

namespace {

unsigned or_usable_cpus(unsigned n) { return n != 0 ? n : usable_cpus(); }

}  // namespace

ServerParts::ServerParts(const ServerConfig& asked)
    : config(asked),
      handler(asked.algorithm, asked.max_n != 0 ? asked.max_n : default_max_n(asked.algorithm)),
      listener(listen_tcp(asked.address, &local)),
      gate(asked.max_computing.value_or(usable_cpus())),
      rules{.stop = &stop_state, .idle = {asked.idle_timeout}, .gate = &gate},
      context{.handler = handler,
              .rules = rules,
              .book = book,
              .listener = listener.get(),
              .local = local,
              .loops = or_usable_cpus(asked.threads),
              .workers = or_usable_cpus(asked.workers),
              .stop_server = [this] { stop(); }} {
  // Inherited by every accepted socket (Linux copies it when it clones the
  // listening socket), which saves a system call per connection: every
  // reply is a small write the client waits for.
  set_no_delay(listener.get());
  engine = make_engine(config.mode, context);
  if (config.max_connections != 0) {
    book.set_limit(config.max_connections);
  } else {
    const unsigned limit = default_max_connections(), held = engine->descriptors_held();
    book.set_limit(limit > held ? limit - held : 1);
  }
}

void ServerParts::log_listening() const {
  const unsigned computing = gate.limit(), most = book.limit();
  const std::string slow = computing == 0 ? std::string("no limit on slow requests at once")
                                          : fmt::format("{} slow request{} at once", computing, plural_s(computing));
  log_whatever_the_level(fmt::format("listening on {} ({} mode{}, {} fib, n up to {}, at most {} connection{}, {})",
                                     local.to_string(), to_string(config.mode), engine->describe(),
                                     fib::to_string(handler.algorithm()), handler.max_n(), most, plural_s(most), slow));
}

ServerStats ServerParts::stats() const {
  ServerStats totals;
  engine->add_to(totals);
  totals.computing = gate.running();
  totals.waiting_to_compute = gate.waiting();
  book.add_to(totals);  // last: accepted is never less than what it counts
  return totals;
}

Server::Server(const ServerConfig& config) : parts_(std::make_unique<ServerParts>(config)) {
  // In every mode, so that a SIGUSR1 from outside never ends the process.
  install_thread_wake();
}

Server::~Server() { stop(); }

void Server::run() {
  parts_->log_listening();
  // Enforces a stop's timeout and logs the statistics.
  std::jthread supervisor([this] { parts_->supervise(); });
  try {
    parts_->engine->run();
  } catch (...) {
    stop();  // whatever failed, the supervisor ends
    parts_->finished.release();
    throw;
  }
  parts_->finished.release();
}

void Server::stop() { parts_->stop(); }

ServerStats Server::stats() const { return parts_->stats(); }

const Endpoint& Server::local_endpoint() const { return parts_->local; }
const ServerConfig& Server::config() const { return parts_->config; }
unsigned Server::max_n() const { return parts_->handler.max_n(); }
unsigned Server::max_computing() const { return parts_->gate.limit(); }

}  // namespace fib
