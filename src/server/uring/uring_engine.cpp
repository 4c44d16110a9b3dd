#include "uring_engine.h"

namespace fib {

namespace {

// Each loop's own descriptors: its ring and its mailbox's eventfd.
constexpr unsigned kDescriptorsPerLoop = 2;

}  // namespace

UringEngine::UringEngine(const EngineContext& context) : LoopEngine(context, "io_uring loops") {
  uring::check_available();
  for (unsigned i = 0; i < context.loops; ++i)
    loops_.push_back(std::make_unique<UringLoop>(context, workers_, static_cast<UringLoops&>(*this)));
}

UringEngine::~UringEngine() = default;

unsigned UringEngine::descriptors_held() const { return kDescriptorsPerLoop * static_cast<unsigned>(loops_.size()); }

const LoopTotals& UringEngine::totals(std::size_t index) const { return *loops_[index]; }

void UringEngine::run_loop(std::size_t index) {
  try {
    loops_[index]->run();
  } catch (...) {
    fail(std::current_exception());  // the ring itself failed: this loop's connections are lost
  }
}

void UringEngine::stop() {
  for (const auto& loop : loops_) loop->post_stop();
}

void UringEngine::abandon() {
  for (const auto& loop : loops_) loop->post_abandon();
}

}  // namespace fib
