// The ways a server can serve, and what becomes of the connections it
// accepts: one table per enum (value, label, words), which the log lines,
// the statistics line and the metrics all read, and counts derived from them.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

namespace fib {

class Engine;
struct EngineContext;

enum class Mode { thread, sequential, coroutine, uring };

struct ModeInfo {
  Mode mode;
  std::string_view name;  // --mode's value, the log's and the metrics' label
  std::string_view help;
  bool event_loops;                                               // takes --threads and --workers
  bool concurrent;                                                // serves connections at the same time
  std::unique_ptr<Engine> (*make)(const EngineContext& context);  // the engine that serves in this mode
};
// Every mode, in the order of Mode's values: the table beside the engines'
// factory (src/server/modes.cpp), which everything that lists the modes
// reads (the options, the tests).
std::span<const ModeInfo> modes();
const ModeInfo& info(Mode mode);
std::string_view to_string(Mode mode);

// How a connection that was served ended.
enum class End { closed, failed, line_too_long, idle, stalled, stopped };

struct EndInfo {
  End end;
  std::string_view label;  // the metrics' label
  std::string_view help;   // the metrics' words for it, if any
  std::string_view log;    // the log's words: "... closed after 3 requests: idle timeout"
};
inline constexpr std::array kEnds{
    EndInfo{End::closed, "closed", "by the client", "closed by the client"},
    EndInfo{End::failed, "failed", "", "failed"},
    EndInfo{End::line_too_long, "line_too_long", "", "line too long"},
    EndInfo{End::idle, "idle", "--idle-timeout", "idle timeout"},
    EndInfo{End::stalled, "stalled", "the client stopped reading", "send timeout: the client stopped reading"},
    EndInfo{End::stopped, "stopped", "the server is stopping", "server stopping"},
};
inline constexpr std::size_t kConnectionEnds = kEnds.size();
std::string_view to_string(End end);

// Why an accepted connection was not served.
enum class Refusal { over_limit, no_thread, no_memory };

struct RefusalInfo {
  Refusal refusal;
  std::string_view label;
  std::string_view help;
};
inline constexpr std::array kRefusals{
    RefusalInfo{Refusal::over_limit, "over_limit", "--max-connections open"},
    RefusalInfo{Refusal::no_thread, "no_thread", "no thread for it (thread mode)"},
    RefusalInfo{Refusal::no_memory, "no_memory", "no memory for it (the loop modes)"},
};
inline constexpr std::size_t kRefusalKinds = kRefusals.size();

// Each table lists its enum's values in order: a value's row is at its index.
constexpr bool indexed_by(const auto& table, auto value_of) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (static_cast<std::size_t>(value_of(table[i])) != i) return false;
  }
  return true;
}
static_assert(indexed_by(kEnds, [](const EndInfo& row) { return row.end; }));
static_assert(indexed_by(kRefusals, [](const RefusalInfo& row) { return row.refusal; }));

}  // namespace fib
