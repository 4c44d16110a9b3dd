#include "fib/server/async_log.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "fib/core/plural.h"

namespace fib {

// A spdlog sink: log() formats into pending_ under the sink's mutex, and a
// thread of its own writes pending_ out in batches.
class BatchingStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BatchingStderrSink() {
    // The writer takes no signals: SIGINT and SIGTERM are for StopSignals'
    // watcher, and a stop's wake-up signal for connection threads.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    writer_ = std::thread([this] { write_batches(); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  ~BatchingStderrSink() override {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    writer_.join();
  }

  // True once everything logged before the call has been written, within `timeout`.
  bool flush_within(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const std::uint64_t wanted = ++flushes_asked_;
    wake_.notify_all();
    return written_.wait_for(lock, timeout, [&] { return flushes_done_ >= wanted; });
  }

 private:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    formatted_.clear();
    formatter_->format(msg, formatted_);
    if (pending_.size() + formatted_.size() > AsyncLog::kMaxPendingBytes) {
      ++dropped_;  // the newest go: what is kept reads in order, then the count
      return;
    }
    const bool first = pending_.empty();
    pending_.append(formatted_.data(), formatted_.size());
    if (first) wake_.notify_one();  // one wake-up per batch, not per line
  }
  void flush_() override {}  // flush_within() is the bounded flush

  void write_batches() {
    std::string batch;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return done_ || !pending_.empty() || dropped_ > 0 || flushes_asked_ > flushes_done_; });
      if (flushes_asked_ == flushes_done_ && !done_) {
        // Let the batch fill for a moment: lines logged meanwhile go out in the same write.
        lock.unlock();
        std::this_thread::sleep_for(AsyncLog::kBatchInterval);
        lock.lock();
      }
      batch.swap(pending_);
      if (dropped_ > 0) {
        const std::string text =
            fmt::format("{} log message{} dropped: standard error was not taking them", dropped_, plural_s(dropped_));
        dropped_ = 0;
        formatted_.clear();
        formatter_->format(spdlog::details::log_msg("", spdlog::level::warn, text), formatted_);
        batch.append(formatted_.data(), formatted_.size());
      }
      const std::uint64_t asked = flushes_asked_;
      const bool last = done_;
      lock.unlock();
      write_all(batch);
      batch.clear();
      lock.lock();
      flushes_done_ = asked;
      written_.notify_all();
      if (last && pending_.empty()) return;
    }
  }

  // May block as long as stderr does: only this thread waits on it.
  static void write_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(STDERR_FILENO, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // stderr closed or broken: nothing more to do with these lines
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Guarded by mutex_ (base_sink's, which log() holds around sink_it_).
  spdlog::memory_buf_t formatted_;
  std::string pending_;
  std::uint64_t dropped_ = 0;
  std::uint64_t flushes_asked_ = 0, flushes_done_ = 0;
  bool done_ = false;
  std::condition_variable wake_;     // lines or a flush for the writer
  std::condition_variable written_;  // a batch went out
  std::thread writer_;
};

AsyncLog::AsyncLog(const std::string& name, spdlog::level::level_enum level)
    : sink_(std::make_shared<BatchingStderrSink>()), logger_(std::make_shared<spdlog::logger>(name, sink_)) {
  logger_->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  logger_->set_level(level);
  spdlog::set_default_logger(logger_);
}

AsyncLog::~AsyncLog() { spdlog::set_default_logger(std::make_shared<spdlog::logger>("", spdlog::sinks_init_list{})); }

bool AsyncLog::flush(std::chrono::milliseconds timeout) { return sink_->flush_within(timeout); }

void log_whatever_the_level(const std::string& line) {
  const std::shared_ptr<spdlog::logger> logger = spdlog::default_logger();
  if (logger->should_log(spdlog::level::info)) {
    logger->info(line);
    return;
  }
  const spdlog::details::log_msg message(logger->name(), spdlog::level::info, line);
  for (const spdlog::sink_ptr& sink : logger->sinks()) sink->log(message);
}

}  // namespace fib
