#include "fib/perf/warnings.h"

#include <fmt/format.h>

namespace fib {

namespace {

// Above these the client probably measured itself.
constexpr double kBusyMachineFraction = 0.9;
constexpr double kBusyThreadFraction = 0.9;
constexpr double kLateSendFraction = 0.01;
// Below this share of the requests due sent, the run fell behind its schedule.
constexpr double kBehindScheduleFraction = 0.99;

}  // namespace

std::vector<std::string> client_warnings(const Summary& s, Clock::duration wall) {
  std::vector<std::string> warnings;
  const double cpu = to_seconds(s.cpu_user + s.cpu_system);
  const double machine = wall.count() > 0 ? cpu / (to_seconds(wall) * s.cores) : 0;
  if (machine >= kBusyMachineFraction) {
    warnings.push_back(
        fmt::format("the client used {:.0f}% of the {} cores it may run on: it may be what limits this measurement",
                    machine * 100, s.cores));
  }
  if (s.busiest_thread_cpu >= kBusyThreadFraction) {
    warnings.push_back(
        fmt::format("a client thread was on the CPU {:.0f}% of the run: the client may be what limits this measurement",
                    s.busiest_thread_cpu * 100));
  }
  const bool rate = s.config.rate.has_value();
  if (rate && static_cast<double>(s.sent_late) > kLateSendFraction * static_cast<double>(s.sent)) {
    warnings.push_back(
        fmt::format("{} requests went out more than 1 ms late with room in the pipeline: the client could not keep its "
                    "schedule, and is what limits this measurement",
                    s.sent_late));
  } else if (rate && static_cast<double>(s.sent) < kBehindScheduleFraction * static_cast<double>(s.scheduled)) {
    warnings.push_back(fmt::format(
        "fell behind the --rate schedule: sent {} of the {} requests due, with the pipeline full: the server did "
        "not answer fast enough",
        s.sent, s.scheduled));
  }
  if (s.gave_up > 0) {
    warnings.push_back(
        fmt::format("{} connection{} gave up (server unreachable, or a timeout under "
                    "--requests)",
                    s.gave_up, s.gave_up == 1 ? "" : "s"));
  }
  return warnings;
}

}  // namespace fib
