#include "fib/server/outcomes.h"

#include <numeric>

#include "fib/server/stats.h"

namespace fib {

std::string_view to_string(Mode mode) { return info(mode).name; }
std::string_view to_string(End end) { return kEnds[static_cast<std::size_t>(end)].log; }

std::uint64_t ServerStats::refused_total() const {
  return std::accumulate(refused.begin(), refused.end(), std::uint64_t{0});
}

}  // namespace fib
