// Covers server_options.h: what fib_server refuses in its options taken
// together, with the exact messages the program prints.
#include "fib/cli/server_options.h"

#include <array>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "fib/core/fib.h"

namespace fib::cli {

// A failure shows the refusal as the program prints it.
void PrintTo(const Refusal& refusal, std::ostream* out) { *out << refusal.option << ": " << refusal.message; }

}  // namespace fib::cli

namespace {

using fib::cli::check_server_options;
using fib::cli::Refusal;
using fib::cli::ServerChoices;

constexpr std::array<std::string_view, 2> kLoopModes{"coroutine", "uring"};

// The choices when only --mode is given: recursive, and no cap asked for.
ServerChoices in_mode(std::string_view mode, bool event_loops) {
  return {.mode = mode, .event_loops = event_loops, .loop_modes = kLoopModes, .algorithm = "recursive"};
}

std::string only_for_loops(std::string_view mode) {
  return "only applies to --mode coroutine or --mode uring (the mode is " + std::string(mode) + ")";
}

TEST(CliServerOptions, TheDefaultsGoTogether) {
  EXPECT_EQ(check_server_options(in_mode("thread", false)), std::nullopt);
}

TEST(CliServerOptions, ThreadsAndWorkersAreRefusedWithoutEventLoops) {
  for (const std::string_view mode : {"thread", "sequential"}) {
    ServerChoices threads = in_mode(mode, false);
    threads.threads_given = true;
    EXPECT_EQ(check_server_options(threads), (Refusal{"--threads", only_for_loops(mode)}));
    ServerChoices workers = in_mode(mode, false);
    workers.workers_given = true;
    EXPECT_EQ(check_server_options(workers), (Refusal{"--workers", only_for_loops(mode)}));
  }
}

TEST(CliServerOptions, ThreadsAreNamedFirstWhenBothAreGiven) {
  ServerChoices both = in_mode("sequential", false);
  both.threads_given = true;
  both.workers_given = true;
  EXPECT_EQ(check_server_options(both), (Refusal{"--threads", only_for_loops("sequential")}));
}

TEST(CliServerOptions, TheLoopModesAreNamedAsTheTableGivesThem) {
  ServerChoices one = in_mode("thread", false);
  one.threads_given = true;
  constexpr std::array<std::string_view, 1> kOne{"coroutine"};
  one.loop_modes = kOne;
  EXPECT_EQ(check_server_options(one), (Refusal{"--threads", "only applies to --mode coroutine (the mode is thread)"}));
  constexpr std::array<std::string_view, 3> kThree{"a", "b", "c"};
  one.loop_modes = kThree;
  EXPECT_EQ(check_server_options(one),
            (Refusal{"--threads", "only applies to --mode a or --mode b or --mode c (the mode is thread)"}));
}

TEST(CliServerOptions, ThreadsAndWorkersGoWithEventLoops) {
  for (const std::string_view mode : kLoopModes) {
    ServerChoices chosen = in_mode(mode, true);
    chosen.threads_given = true;
    chosen.workers_given = true;
    EXPECT_EQ(check_server_options(chosen), std::nullopt) << mode;
  }
}

TEST(CliServerOptions, ARecursiveCapBeyondReasonIsRefused) {
  ServerChoices chosen = in_mode("thread", false);
  chosen.max_n = fib::kMaxRecursive + 1;
  EXPECT_EQ(check_server_options(chosen),
            (Refusal{"--max-n",
                     "51 is too large for --algorithm recursive, where each n costs 1.6 times the one before (fib(45) "
                     "about a second, fib(50) tens of seconds, fib(93) millennia): at most 50; --algorithm iterative "
                     "answers up to 93 in microseconds"}));
  chosen.max_n = fib::kMaxIndex;
  const auto largest = check_server_options(chosen);
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(largest->option, "--max-n");
  EXPECT_TRUE(largest->message.starts_with("93 is too large for --algorithm recursive,")) << largest->message;
}

TEST(CliServerOptions, EachAlgorithmTakesCapsUpToItsLimit) {
  ServerChoices recursive = in_mode("thread", false);
  recursive.max_n = fib::kMaxRecursive;
  EXPECT_EQ(check_server_options(recursive), std::nullopt);
  ServerChoices iterative = in_mode("thread", false);
  iterative.algorithm = "iterative";
  iterative.max_n = fib::kMaxIndex;
  EXPECT_EQ(check_server_options(iterative), std::nullopt);
}

// The mode is refused before the cap, as CLI11 can report only one.
TEST(CliServerOptions, AnOptionForAnotherModeIsReportedBeforeTheCap) {
  ServerChoices chosen = in_mode("sequential", false);
  chosen.threads_given = true;
  chosen.max_n = fib::kMaxIndex;
  EXPECT_EQ(check_server_options(chosen), (Refusal{"--threads", only_for_loops("sequential")}));
  chosen.event_loops = true;
  chosen.mode = "coroutine";
  const auto cap = check_server_options(chosen);
  ASSERT_TRUE(cap.has_value());
  EXPECT_EQ(cap->option, "--max-n");
}

}  // namespace
