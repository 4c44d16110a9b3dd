// Logging that never holds up serving or stopping: messages go into a
// bounded queue that one background thread writes to stderr. When stderr
// stops taking them (a log shipper stalled, a terminal paused with Ctrl-S),
// the queue fills and the oldest messages are dropped, so no connection
// thread ever waits on the log; once output moves again, the number dropped
// is logged first.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <spdlog/common.h>

namespace spdlog {
class async_logger;
namespace details {
class thread_pool;
}
}  // namespace spdlog

namespace fib {

class FlushSignal;

class AsyncLog {
 public:
  // Messages held while stderr is slow, at most.
  static constexpr std::size_t kQueueMessages = 8192;

  // Makes an asynchronous stderr logger named `name` the default logger.
  AsyncLog(const std::string& name, spdlog::level::level_enum level);
  ~AsyncLog();
  AsyncLog(const AsyncLog&) = delete;
  AsyncLog& operator=(const AsyncLog&) = delete;

  // Waits up to `timeout` for everything logged so far to reach stderr; false
  // when stderr did not take it in time. The destructor must then not run:
  // its background thread may be stuck in a write (leave with std::_Exit).
  bool flush(std::chrono::milliseconds timeout);

 private:
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<FlushSignal> flushed_;
  std::shared_ptr<spdlog::async_logger> logger_;
};

}  // namespace fib
