// What fib_server refuses in its options taken together, over plain values:
// the mode's facts come from the server's table of modes, which this
// library does not see, so the rules are tested without a server.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace fib::cli {

struct ServerChoices {
  std::string_view mode;                         // --mode's value
  bool event_loops = false;                      // whether that mode has event loops
  std::span<const std::string_view> loop_modes;  // the modes that have them, in the table's order
  bool threads_given = false;                    // --threads
  bool workers_given = false;                    // --workers
  std::string_view algorithm;                    // --algorithm's value
  unsigned max_n = 0;                            // --max-n; 0 when not given
};

// The option refused, and why, as CLI::ValidationError takes them.
struct Refusal {
  std::string option;
  std::string message;
  bool operator==(const Refusal&) const = default;
};

// Options that mean nothing in the mode chosen are refused, not ignored
// (--threads before --workers); so is a recursive cap no request could live
// up to. nullopt: the choices go together.
std::optional<Refusal> check_server_options(const ServerChoices& chosen);

}  // namespace fib::cli
