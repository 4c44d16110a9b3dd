#include "engine.h"

#include "coroutine_engine.h"
#include "sequential_engine.h"
#include "thread_engine.h"
#include "uring_engine.h"

namespace fib {

// The one place that looks at the mode.
std::unique_ptr<Engine> make_engine(Mode mode, const EngineContext& context) {
  switch (mode) {
    case Mode::thread: return std::make_unique<ThreadEngine>(context);
    case Mode::sequential: return std::make_unique<SequentialEngine>(context);
    case Mode::coroutine: return std::make_unique<CoroutineEngine>(context);
    case Mode::uring: return std::make_unique<UringEngine>(context);
  }
  return std::make_unique<ThreadEngine>(context);
}

}  // namespace fib
