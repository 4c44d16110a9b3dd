// The plural "s" of log lines and reports: "1 request", "2 requests".
#pragma once

#include <cstdint>
#include <string_view>

namespace fib {

// "s" for a count of anything but one, for nouns whose plural is a plain "s".
constexpr std::string_view plural_s(std::uint64_t count) { return count == 1 ? "" : "s"; }

}  // namespace fib
