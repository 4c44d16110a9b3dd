// Threads that compute slow requests for event loops, at a lower priority
// than the loops (priority.h), so that quick requests never wait for a CPU
// behind a computation. Work is posted with post(); the asio engine's
// coroutines are spawned on context() instead, and await their end there.
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace asio {
class io_context;
}  // namespace asio

namespace fib {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Starts the threads; they run until join().
  void start();
  // Once the work posted has run: ends the threads, and joins them.
  void join();

  // Runs `work` on one of the threads.
  void post(std::function<void()> work);
  // What the threads run, for co_spawn.
  asio::io_context& context();
  unsigned size() const { return count_; }

 private:
  void run();

  struct Queue;  // an io_context, and the claim on it that keeps the threads running
  std::unique_ptr<Queue> queue_;
  const unsigned count_;
  std::vector<std::thread> threads_;
};

}  // namespace fib
