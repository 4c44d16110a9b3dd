#include "fib_server/async_log.h"

#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace fib {

// Counts the flushes the background thread has done, so that a caller can
// wait, with a bound, for its own.
class FlushSignal {
 public:
  std::uint64_t count() {
    std::lock_guard lock(mutex_);
    return count_;
  }
  void notify() {
    {
      std::lock_guard lock(mutex_);
      ++count_;
    }
    changed_.notify_all();
  }
  bool wait_past(std::uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return count_ > seen; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t count_ = 0;
};

namespace {

// Runs on the logger's background thread only. Writes to stderr and, before
// the first message after some were dropped, says how many.
class DropCountingSink final : public spdlog::sinks::sink {
 public:
  DropCountingSink(spdlog::details::thread_pool& pool, std::shared_ptr<FlushSignal> flushed)
      : pool_(pool), flushed_(std::move(flushed)) {}

  void log(const spdlog::details::log_msg& msg) override {
    const std::size_t dropped = pool_.overrun_counter();
    if (dropped > reported_) {
      const std::string text = fmt::format("{} log messages dropped: standard error was not taking them",
                                           dropped - reported_);
      reported_ = dropped;
      stderr_.log(spdlog::details::log_msg(msg.time, {}, msg.logger_name, spdlog::level::warn, text));
    }
    stderr_.log(msg);
  }
  void flush() override {
    stderr_.flush();
    flushed_->notify();
  }
  void set_pattern(const std::string& pattern) override { stderr_.set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    stderr_.set_formatter(std::move(formatter));
  }

 private:
  spdlog::details::thread_pool& pool_;
  std::shared_ptr<FlushSignal> flushed_;
  spdlog::sinks::stderr_color_sink_st stderr_;
  std::size_t reported_ = 0;
};

}  // namespace

namespace {

// The background thread takes no signals: SIGINT and SIGTERM are for
// StopSignals' watcher, and a stop's wake-up signal for connection threads.
std::shared_ptr<spdlog::details::thread_pool> start_queue_thread() {
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  auto pool = std::make_shared<spdlog::details::thread_pool>(AsyncLog::kQueueMessages, 1);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return pool;
}

}  // namespace

AsyncLog::AsyncLog(const std::string& name, spdlog::level::level_enum level)
    : pool_(start_queue_thread()), flushed_(std::make_shared<FlushSignal>()) {
  auto sink = std::make_shared<DropCountingSink>(*pool_, flushed_);
  logger_ = std::make_shared<spdlog::async_logger>(name, std::move(sink), pool_,
                                                   spdlog::async_overflow_policy::overrun_oldest);
  logger_->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  logger_->set_level(level);
  spdlog::set_default_logger(logger_);
}

AsyncLog::~AsyncLog() {
  // The default logger goes first; then the queue's thread is joined (what
  // it still holds is written first), so that the last reference to the
  // logger is ours, not the background thread's.
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("", spdlog::sinks_init_list{}));
  pool_.reset();
  logger_.reset();
}

bool AsyncLog::flush(std::chrono::milliseconds timeout) {
  const std::uint64_t seen = flushed_->count();
  logger_->flush();  // queued behind everything logged so far
  return flushed_->wait_past(seen, timeout);
}

}  // namespace fib
