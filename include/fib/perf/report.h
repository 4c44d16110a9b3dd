// How fib_perf prints what it measured. Pure: numbers in, text out.
#pragma once

#include <cstdint>
#include <string>

#include "fib/perf/load_config.h"

namespace fib {

// "850ns", "31.2us", "2.41ms", "1.20s".
std::string format_latency(std::uint64_t ns);
// The live line, in perf2's spirit: "31234 reqs/s  p50 31.2us  p99 58.0us  errors 0".
std::string format_interval(const IntervalReport& interval);
// The human-readable summary, several lines.
std::string format_summary(const Summary& summary);
// The summary as one JSON object on one line.
std::string format_summary_json(const Summary& summary);

}  // namespace fib
