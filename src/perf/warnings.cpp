#include "fib/perf/warnings.h"

#include <fmt/format.h>

#include "fib/core/plural.h"

namespace fib {

namespace {

// Above these the client probably measured itself.
constexpr double kBusyMachineFraction = 0.9;
constexpr double kBusyThreadFraction = 0.9;
constexpr double kLateSendFraction = 0.01;
// Below this share of the requests due sent, the run fell behind its schedule.
constexpr double kBehindScheduleFraction = 0.99;

bool late_sends(const Summary& s) {
  return static_cast<double>(s.sent_late) > kLateSendFraction * static_cast<double>(s.sent);
}

bool behind_schedule(const Summary& s) {
  return static_cast<double>(s.sent) < kBehindScheduleFraction * static_cast<double>(s.scheduled);
}

}  // namespace

bool rate_held(const Summary& s) { return !s.config.rate || (!late_sends(s) && !behind_schedule(s)); }

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
  if (rate && late_sends(s)) {
    warnings.push_back(
        fmt::format("{} request{} went out more than 1 ms late with room in the pipeline: the client could not keep "
                    "its schedule, and is what limits this measurement",
                    s.sent_late, plural_s(s.sent_late)));
  } else if (rate && behind_schedule(s)) {
    warnings.push_back(fmt::format(
        "fell behind the --rate schedule: sent {} of the {} request{} due, with the pipeline full: the server did "
        "not answer fast enough",
        s.sent, s.scheduled, plural_s(s.scheduled)));
  }
  if (s.gave_up > 0) {
    warnings.push_back(
        fmt::format("{} connection{} gave up (server unreachable, or a timeout under "
                    "--requests)",
                    s.gave_up, plural_s(s.gave_up)));
  }
  return warnings;
}

}  // namespace fib
