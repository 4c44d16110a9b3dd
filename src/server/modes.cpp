// The table of modes, beside the factory of engines: the one place that
// names the engines.
#include "asio/asio_engine.h"
#include "blocking/sequential_engine.h"
#include "blocking/thread_engine.h"
#include "engine.h"
#include "fib/server/outcomes.h"
#include "uring/uring_engine.h"

namespace fib {

namespace {

template <typename ModeEngine>
std::unique_ptr<Engine> make(const EngineContext& context) {
  return std::make_unique<ModeEngine>(context);
}

// A new mode is a value of Mode, its engine, and a row here.
constexpr std::array kModes{
    ModeInfo{Mode::thread, "thread", "one thread per connection", false, true, make<ThreadEngine>},
    ModeInfo{Mode::sequential, "sequential", "one connection at a time", false, false, make<SequentialEngine>},
    ModeInfo{Mode::coroutine, "coroutine", "a coroutine per connection on event loops, slow requests on worker threads",
             true, true, make<AsioEngine>},
    ModeInfo{Mode::uring, "uring", "the same on io_uring rings instead of epoll", true, true, make<UringEngine>},
};

static_assert(indexed_by(kModes, [](const ModeInfo& row) { return row.mode; }));

}  // namespace

std::span<const ModeInfo> modes() { return kModes; }
const ModeInfo& info(Mode mode) { return kModes[static_cast<std::size_t>(mode)]; }

std::unique_ptr<Engine> make_engine(Mode mode, const EngineContext& context) { return info(mode).make(context); }

}  // namespace fib
