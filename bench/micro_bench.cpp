// Microbenchmarks of the pure core: both Fibonacci algorithms, framing and
// replying to typical and pipelined input, recording a latency.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <string_view>

#include <benchmark/benchmark.h>

#include "fib/core/fib.h"
#include "fib/core/histogram.h"
#include "fib/core/line_framer.h"
#include "fib/core/request_handler.h"

namespace {

void BM_FibRecursive(benchmark::State& state) {
  const auto n = static_cast<unsigned>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(fib::fib_recursive(n));
}
BENCHMARK(BM_FibRecursive)->Arg(1)->Arg(20)->Arg(30)->Arg(35)->Unit(benchmark::kMicrosecond);

// The cancellable recursion a server uses: what its stop checks cost.
void BM_FibRecursiveCancellable(benchmark::State& state) {
  const auto n = static_cast<unsigned>(state.range(0));
  const std::atomic<bool> cancel{false};
  for (auto _ : state) benchmark::DoNotOptimize(fib::fib_recursive(n, cancel));
}
BENCHMARK(BM_FibRecursiveCancellable)->Arg(1)->Arg(20)->Arg(30)->Arg(35)->Unit(benchmark::kMicrosecond);

void BM_FibIterative(benchmark::State& state) {
  const auto n = static_cast<unsigned>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(fib::fib_iterative(n));
}
BENCHMARK(BM_FibIterative)->Arg(1)->Arg(30)->Arg(93);

// Frames `input` and replies to every line, as a connection does: each read
// fills at most the framer's free space (512 bytes at first), then its lines
// are answered.
void frame_and_reply(benchmark::State& state, const std::string& input) {
  const fib::RequestHandler handler(fib::Algorithm::iterative, fib::kMaxIndex);
  fib::ReplyBuffer replies;
  std::int64_t lines = 0;
  for (auto _ : state) {
    fib::LineFramer framer(fib::kMaxRequestLineBytes);
    std::string_view rest = input;
    while (!rest.empty()) {
      const auto space = framer.free_space();
      const auto n = std::min(space.size(), rest.size());
      std::memcpy(space.data(), rest.data(), n);
      framer.commit(n);
      rest.remove_prefix(n);
      while (const auto line = framer.next_line()) {
        if (replies.nearly_full()) replies.clear();
        handler.reply(*line, replies);
        ++lines;
      }
    }
    benchmark::DoNotOptimize(replies.view().data());
  }
  state.SetItemsProcessed(lines);
}

void BM_FrameAndReplyOne(benchmark::State& state) { frame_and_reply(state, "1\n"); }
BENCHMARK(BM_FrameAndReplyOne);

void BM_FrameAndReplyPipelined(benchmark::State& state) {
  std::string input;
  for (int i = 0; i < 400; ++i) input += std::to_string(i % 94) + "\n";  // about 1.1 KiB
  frame_and_reply(state, input);
}
BENCHMARK(BM_FrameAndReplyPipelined);

void BM_ReplyError(benchmark::State& state) { frame_and_reply(state, "hello\n"); }
BENCHMARK(BM_ReplyError);

// fib_perf records one latency per answer.
void BM_HistogramRecord(benchmark::State& state) {
  fib::Histogram histogram;
  std::uint64_t value = 12'345;
  for (auto _ : state) {
    histogram.record(value);
    value = value * 6364136223846793005u + 1442695040888963407u;  // spread over the buckets
    value >>= 28;
  }
  benchmark::DoNotOptimize(histogram.count());
}
BENCHMARK(BM_HistogramRecord);

}  // namespace

BENCHMARK_MAIN();
