// A thread per connection, as the Go server has a goroutine: the accepting
// thread hands each connection to a thread of its own, which serves it with
// blocking calls. Between connections a thread parks (up to
// kMaxParkedThreads of them), so that a new connection usually costs a
// wake-up rather than a new thread, as MySQL's thread cache does. A registry
// of live connections lets a stop wake their threads.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine.h"
#include "rules/connection_counters.h"

namespace fib {

class ThreadEngine final : public Engine {
 public:
  explicit ThreadEngine(const EngineContext& context);
  ~ThreadEngine() override;

  void run() override;
  void wake() override;
  void abandon() override;
  void add_to(ServerStats& stats) const override;

 private:
  // A live connection: the thread serving it (which a stop wakes with a
  // signal) and its descriptor (whose send timeout a stop shortens).
  struct Live {
    int fd = -1;
    pthread_t thread{};
    ConnectionCounters counters;
  };
  using LiveList = std::list<Live>;
  struct Job {
    int fd;
    Ticket ticket;
    LiveList::iterator self;
  };
  struct ConnectionThread {
    std::thread thread;
    std::condition_variable wake;  // a job was handed over, or the server is stopping
    std::optional<Job> job;
  };
  using ConnectionThreadList = std::list<ConnectionThread>;
  static constexpr std::size_t kMaxParkedThreads = 64;

  void hand_over(Fd fd, Ticket ticket);
  void start_thread(Fd& fd, Ticket& ticket, LiveList::iterator self, std::unique_lock<std::mutex>& lock);
  void connection_thread(ConnectionThreadList::iterator self);
  void serve(Job& job);
  void drain();

  const EngineContext& context_;
  mutable std::mutex mutex_;  // guards everything below; taken per connection, never per request
  // While stopping: signalled by every connection or thread that ends.
  std::condition_variable changed_;
  bool stopping_ = false;
  LiveList live_;
  ConnectionThreadList threads_;           // running connection threads, busy or parked
  std::vector<ConnectionThread*> parked_;  // the idle ones among them
  std::thread last_retired_;               // the one ended thread not yet joined
  // Of connections no longer live.
  ReplyCounts closed_replies_;
  ServiceTimes closed_service_times_;
};

}  // namespace fib
