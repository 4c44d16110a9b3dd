// What fib_perf says about its own measurement: warnings when the client,
// not the server, may have set the pace, when the server fell behind a
// --rate schedule, left connections unanswered while it answered others,
// stopped answering mid-run, or when connections gave up. Pure: a summary
// in, text out.
#pragma once

#include <string>
#include <vector>

#include "fib/core/clock.h"
#include "fib/perf/load_config.h"

namespace fib {

// Under --rate, whether the schedule was kept: at least 99% of the requests
// due were sent, and at most 1% of those went out more than 1 ms late with
// room in the pipeline. Without --rate, true.
bool rate_held(const Summary& summary);

// `wall` is the whole run, warm-up included, over which the client's CPU
// time in `summary` was taken.
std::vector<std::string> client_warnings(const Summary& summary, Clock::duration wall);

}  // namespace fib
