// Behaviour tests run once for every mode the behaviour holds in, under one
// name per mode ("Modes/ServerTest.NetcatStyleLines/coroutine").
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fib/server/server.h"

namespace fib::testing {

class ModeTest : public ::testing::TestWithParam<Mode> {
 protected:
  Mode mode() const { return GetParam(); }
  // `config` in the mode under test.
  ServerConfig in_mode(ServerConfig config = {}) const {
    config.mode = GetParam();
    return config;
  }
  // fib_server's arguments: `args`, then the mode under test.
  std::vector<std::string> args(std::vector<std::string> args) const {
    args.emplace_back("--mode");
    args.emplace_back(to_string(GetParam()));
    return args;
  }
};

// The modes whose row in the table of modes says `pick`.
template <typename Pick>
auto modes_where(Pick pick) {
  std::vector<Mode> picked;
  for (const ModeInfo& row : modes())
    if (pick(row)) picked.push_back(row.mode);
  return ::testing::ValuesIn(picked);
}
inline auto all_modes() {
  return modes_where([](const ModeInfo&) { return true; });
}
// The modes that serve connections at the same time: every behaviour but
// the sequential mode's one-at-a-time (covered on its own) holds in each.
inline auto concurrent_modes() {
  return modes_where([](const ModeInfo& row) { return row.concurrent; });
}
// The modes with event loops (--threads, --workers).
inline auto loop_modes() {
  return modes_where([](const ModeInfo& row) { return row.event_loops; });
}

inline std::string mode_name(const ::testing::TestParamInfo<Mode>& info) { return std::string(to_string(info.param)); }

}  // namespace fib::testing
