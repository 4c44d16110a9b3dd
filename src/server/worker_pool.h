// Threads that compute slow requests for event loops, at a lower priority
// than the loops (priority.h), so that quick requests never wait for a CPU
// behind a computation. Work is posted to executor(); a coroutine awaits it
// with co_spawn(executor(), ..., use_awaitable).
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <optional>
#include <thread>
#include <vector>

namespace fib {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads) : io_(static_cast<int>(threads)), count_(threads) {}
  ~WorkerPool() { join(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Starts the threads; they run until join().
  void start();
  // Once the work posted has run: ends the threads, and joins them.
  void join();

  asio::io_context::executor_type executor() { return io_.get_executor(); }
  unsigned size() const { return count_; }

 private:
  void run();

  asio::io_context io_;
  const unsigned count_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keep_;
  std::vector<std::thread> threads_;
};

}  // namespace fib
