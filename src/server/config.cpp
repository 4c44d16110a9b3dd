#include "fib/server/config.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <thread>

#include "fib/net/socket.h"

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

}  // namespace fib
