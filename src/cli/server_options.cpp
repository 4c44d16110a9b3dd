#include "fib/cli/server_options.h"

#include <array>
#include <utility>

#include <fmt/format.h>

#include "fib/core/fib.h"

namespace fib::cli {

namespace {

// "--mode coroutine", or "--mode a or --mode b".
std::string mode_list(std::span<const std::string_view> modes) {
  std::string names;
  for (const std::string_view name : modes) names += fmt::format("{}--mode {}", names.empty() ? "" : " or ", name);
  return names;
}

}  // namespace

std::optional<Refusal> check_server_options(const ServerChoices& chosen) {
  if (!chosen.event_loops) {
    const std::array<std::pair<const char*, bool>, 2> options{
        {{"--threads", chosen.threads_given}, {"--workers", chosen.workers_given}}};
    for (const auto& [option, given] : options) {
      if (given)
        return Refusal{option,
                       fmt::format("only applies to {} (the mode is {})", mode_list(chosen.loop_modes), chosen.mode)};
    }
  }
  if (chosen.algorithm == "recursive" && chosen.max_n > kMaxRecursive) {
    return Refusal{"--max-n", fmt::format("{} is too large for --algorithm recursive, where each n costs 1.6 times the "
                                          "one before (fib(45) about a second, fib({}) tens of seconds, fib(93) "
                                          "millennia): at most {}; --algorithm iterative answers up to {} in "
                                          "microseconds",
                                          chosen.max_n, kMaxRecursive, kMaxRecursive, kMaxIndex)};
  }
  return std::nullopt;
}

}  // namespace fib::cli
