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
  if (s.starved > 0) {
    const unsigned answered = s.config.connections - s.starved;
    warnings.push_back(fmt::format(
        "{} of the {} connections got no answer while the other{} got {}: the server served only some of them "
        "(fib_server --mode sequential serves one connection at a time); the figures are those of {} connection{}, "
        "not {}",
        s.starved, s.config.connections, plural_s(answered), s.requests, answered, plural_s(answered),
        s.config.connections));
  }
  if (s.outage_count == 1 && !s.outages.empty()) {
    const Outage& o = s.outages.front();
    warnings.push_back(
        fmt::format("the server stopped answering {:.2f} s into the run {} {:.2f} s{}; req/s is over "
                    "the {:.2f} s it answered",
                    to_seconds(o.at), o.to_end ? "and did not answer again:" : "for", to_seconds(o.length),
                    o.to_end ? " to the end" : "", to_seconds(s.answering())));
  } else if (s.outage_count > 1 && !s.outages.empty()) {
    warnings.push_back(fmt::format(
        "the server stopped answering {} times, {:.2f} s in all, first {:.2f} s into the run; req/s is over the "
        "{:.2f} s it answered",
        s.outage_count, to_seconds(s.not_answering), to_seconds(s.outages.front().at), to_seconds(s.answering())));
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
