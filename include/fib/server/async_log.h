// Logging that never holds up serving or stopping. Log lines are formatted
// by the thread that logs them into a bounded buffer in memory, and one
// background thread writes the buffer to stderr in batches (every
// kBatchInterval), so no connection thread ever waits on stderr, and a busy
// server makes one write per batch rather than one per line. When stderr
// stops taking them (a log shipper stalled, a terminal paused with Ctrl-S),
// the buffer fills and further lines are dropped and counted; once output
// moves again, a line says how many.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <spdlog/common.h>

namespace spdlog {
class logger;
}

namespace fib {

class BatchingStderrSink;

class AsyncLog {
 public:
  // Lines held while stderr is slow, at most, in bytes: about 3,000 lines,
  // a tenth of a second of the busiest churn.
  static constexpr std::size_t kMaxPendingBytes = std::size_t{256} * 1024;
  // How long lines wait, at most, to be written with the ones after them.
  static constexpr std::chrono::milliseconds kBatchInterval{20};

  // Makes a stderr logger named `name` the default logger.
  AsyncLog(const std::string& name, spdlog::level::level_enum level);
  ~AsyncLog();
  AsyncLog(const AsyncLog&) = delete;
  AsyncLog& operator=(const AsyncLog&) = delete;

  // Waits up to `timeout` for everything logged so far to be written to
  // stderr; false when stderr did not take it in time. The destructor must
  // then not run: the writer may be stuck in a write (leave with std::_Exit).
  bool flush(std::chrono::milliseconds timeout);

 private:
  std::shared_ptr<BatchingStderrSink> sink_;
  std::shared_ptr<spdlog::logger> logger_;
};

// An info line written whatever the log level, even "off": where the server
// listens, which a client of port 0 cannot learn any other way.
void log_whatever_the_level(const std::string& line);

}  // namespace fib
