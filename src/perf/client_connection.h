// One client connection of a load run and the thread that drives it, and
// the state every connection of the run shares. Private to fib::perf.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fib/core/clock.h"
#include "fib/core/histogram.h"
#include "fib/core/line_framer.h"
#include "fib/core/rate_schedule.h"
#include "fib/net/socket.h"
#include "fib/perf/in_flight.h"
#include "fib/perf/load_config.h"

namespace fib {

// The longest reply line fib_perf takes: its own limit, apart from the
// server's for requests. An answer has at most 20 digits, an error line a
// hundred bytes or so; a longer line means the framing is lost.
inline constexpr std::size_t kMaxReplyLineBytes = 4095;

// A duration in nanoseconds, for the histograms (0 for a negative one).
inline std::uint64_t to_ns(Clock::duration d) {
  return static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

class ClientConnection;

// What the connections of one run share. Written by run() before `go` opens
// (start, measure_start) or before `stop` is set (end).
struct LoadRun {
  explicit LoadRun(LoadConfig c);

  bool stopping() const { return stop.load(std::memory_order_acquire); }

  const LoadConfig config;
  std::string requests;  // `pipeline` copies of "n\n": a batch is a prefix
  std::string expected;  // F(n) as the server should write it
  std::atomic<bool> stop{false};
  std::latch ready;  // counted down by each connection once connected
  std::latch go{1};  // opened by run() once every connection is ready
  Clock::time_point start, measure_start;
  Clock::time_point end;

  std::mutex done_mutex;  // guards `running`; wakes run() early
  std::condition_variable done;
  unsigned running = 0;

  std::vector<std::unique_ptr<ClientConnection>> connections;
};

class ClientConnection {
 public:
  // What the collector takes once a second; guarded by mutex_.
  struct Stats {
    Histogram latency;
    std::unique_ptr<Histogram> uncorrected;
    std::uint64_t requests = 0;
    ErrorCounts errors;
    std::vector<std::string> unexpected_replies;  // the first few distinct ones (keep_unexpected_reply)
  };

  // `fd`: already connected, or empty to connect in the thread.
  ClientConnection(LoadRun& run, unsigned index, Fd fd);

  void start() {
    thread_ = std::thread([this] { body(); });
  }
  bool started() const { return thread_.joinable(); }
  void join() { thread_.join(); }

  // Moves what was recorded since the last call into `into`. Thread-safe.
  void collect(Stats& into);

  // From the last reply before the server failed this connection (reset or
  // closed it with requests in flight, let a request time out, refused a
  // reconnection) to the next reply: when the server did not answer it.
  // Replies in the warm-up count, wrong ones too.
  struct Silence {
    Clock::time_point begin, end;
  };

  // After join().
  std::uint64_t collected_requests() const { return collected_requests_; }
  bool replied() const { return replied_; }  // ever, warm-up included
  // It waited for answers in the measured part: it sent measured requests,
  // or had requests in flight (from the warm-up, say) or due when it ended.
  // Not a connection whose --requests share was 0, nor one with nothing due
  // under a low --rate.
  bool asked() const { return measured_sent_ > 0 || !in_flight_.empty() || unsent_ > 0; }
  const std::vector<Silence>& silences() const { return silences_; }
  // Since when it has been lost without a reply since (the silence not
  // closed by a reply), if it has.
  std::optional<Clock::time_point> silent_since() const {
    return lost_since_reply_ ? std::optional(last_reply_) : std::nullopt;
  }
  // It ended with its --requests quota sent and answered.
  bool quota_finished() const { return finished(); }
  std::uint64_t in_flight() const { return measured_in_flight(); }
  std::uint64_t unsent() const { return unsent_; }
  bool gave_up() const { return gave_up_; }
  std::uint64_t scheduled() const { return scheduled_; }
  std::uint64_t sent() const { return measured_sent_; }
  std::uint64_t sent_late() const { return sent_late_; }
  double thread_cpu_fraction() const { return thread_cpu_fraction_; }
  Clock::time_point finished_at() const { return finished_at_; }

 private:
  void body();
  bool quota_done() const { return quota_ && measured_sent_ >= *quota_; }
  bool measured(Clock::time_point due) const { return due >= run_.measure_start; }
  bool finished() const { return quota_done() && in_flight_.empty(); }
  void closed_loop();
  void open_loop();
  void account_for_the_end(const RateSchedule& schedule, std::uint64_t slots);
  template <typename DueOf>
  std::uint64_t affordable(std::uint64_t count, DueOf due_of) const;
  template <typename DueOf>
  bool send(std::uint64_t count, DueOf due_of, Clock::time_point now);
  bool receive();
  bool take_answers(Clock::time_point now);
  void unexpected(std::string_view reply);
  bool check_timeout(Clock::time_point now);
  std::uint64_t measured_in_flight() const;
  void lose_connection(std::uint64_t ErrorCounts::*kind);
  void replied_at(Clock::time_point now);
  bool connect();
  void configure_socket();

  LoadRun& run_;
  const unsigned index_;
  Fd fd_;
  LineFramer framer_{kMaxReplyLineBytes};
  InFlight in_flight_;
  std::optional<std::uint64_t> quota_;  // measured requests this connection sends
  std::uint64_t measured_sent_ = 0, sent_late_ = 0, scheduled_ = 0, unsent_ = 0;
  bool gave_up_ = false;
  // The connection's thread's own, read after join().
  Clock::time_point last_reply_;
  bool replied_ = false, lost_since_reply_ = false;
  std::vector<Silence> silences_;
  double thread_cpu_fraction_ = 0;
  Clock::time_point finished_at_;

  std::mutex mutex_;  // this connection's own: its thread and the collector
  Stats stats_;
  std::uint64_t collected_requests_ = 0;  // the collector's running total

  std::thread thread_;
};

// Adds `reply` to `replies` unless it is there already or three are kept:
// the first few distinct replies that were not F(n), cut to a readable length.
void keep_unexpected_reply(std::vector<std::string>& replies, std::string_view reply);

// The CPU time a process (RUSAGE_SELF) or thread (RUSAGE_THREAD) has used.
struct CpuTimes {
  Clock::duration user{}, system{};
};
CpuTimes cpu_times(int who);

}  // namespace fib
