// What a server is asked to do: its address, mode and limits.
#pragma once

#include <chrono>
#include <optional>

#include "fib/core/address.h"
#include "fib/core/fib.h"
#include "fib/server/outcomes.h"

namespace fib {

struct ServerConfig {
  HostPort address{"127.0.0.1", 25000};
  Mode mode = Mode::thread;
  Algorithm algorithm = Algorithm::recursive;
  unsigned max_n = 0;  // 0: fib::default_max_n(algorithm)
  // How long a stop lets requests already read run, and answers reach
  // clients still reading, before giving up on them (see Server::run()).
  std::chrono::milliseconds shutdown_timeout{10'000};
  // Connections served at once; a client over the limit gets an error line
  // and is closed. 0: what the descriptor limit allows.
  unsigned max_connections = 0;
  // A connection that completes no request, or cannot send its replies, for
  // this long is closed. 0: never.
  std::chrono::milliseconds idle_timeout{300'000};
  // Log a statistics line this often, and once at shutdown; 0: never.
  std::chrono::milliseconds stats_interval{0};
  // Modes with event loops: their threads, and the worker threads for slow
  // requests. 0: usable_cpus().
  unsigned threads = 0;
  unsigned workers = 0;
  // Slow requests computed at once, in every mode; the others wait their
  // turn. nullopt: usable_cpus(); 0: no limit.
  std::optional<unsigned> max_computing = std::nullopt;
};

// The descriptor limit in effect, less a reserve for the listener, logging
// and the like.
unsigned default_max_connections();
// The CPUs this process may run on.
unsigned usable_cpus();

}  // namespace fib
