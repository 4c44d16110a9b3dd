// A thin layer over liburing for the uring engine: a ring per loop thread,
// operations a C++20 coroutine awaits, a mailbox other threads post to, and
// a fire-and-forget coroutine type. Every completion queue entry's
// user_data is a Completion (or 0: nobody waits for it).
#pragma once

#include <liburing.h>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "fib/net/socket.h"

namespace fib::uring {

// What a completion queue entry completes.
class Completion {
 public:
  virtual void complete(int result, unsigned flags) = 0;

 protected:
  Completion() = default;
  ~Completion() = default;
  Completion(const Completion&) = default;
  Completion& operator=(const Completion&) = default;
};

// A completion that calls a member of its owner with the result and flags.
template <typename Owner, void (Owner::*kMethod)(int, unsigned)>
class Callback final : public Completion {
 public:
  explicit Callback(Owner& owner) : owner_(owner) {}
  void complete(int result, unsigned flags) override { (owner_.*kMethod)(result, flags); }

 private:
  Owner& owner_;
};

// Throws std::runtime_error saying why io_uring cannot be set up here, and
// which mode to use instead.
void check_available();

// Completions other threads hand to a loop: they are completed on the
// loop's thread. Its eventfd is read through the ring.
class Mailbox {
 public:
  Mailbox();
  // From any thread; false, and `completion` is not completed, once the
  // loop has closed its mailbox.
  bool post(Completion* completion);
  // On the loop's thread, as it ends: false (and open still) when something
  // is posted and not taken yet.
  bool close();
  // On the loop's thread, once the eventfd has been read.
  std::vector<Completion*> take();
  int fd() const { return event_.get(); }
  std::uint64_t* buffer() { return &value_; }

 private:
  Fd event_;
  std::uint64_t value_ = 0;
  std::mutex mutex_;
  std::vector<Completion*> posted_;
  bool signalled_ = false;
  bool closed_ = false;
};

class BufferRing;

class Ring {
 public:
  // On the thread that will submit: SINGLE_ISSUER and DEFER_TASKRUN where
  // the kernel has them (6.1), plain flags otherwise.
  Ring(unsigned entries, Mailbox& mailbox);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // An entry to fill, submitting what is queued first when none is free.
  io_uring_sqe* sqe(Completion* completion);
  // Asks the kernel to cancel the operation `completion` waits for.
  void cancel(Completion* completion);
  // Submits what is queued, waits for a completion, and completes every
  // one there is; the mailbox's among them.
  void run_once();

 private:
  void read_mail();
  void mail_arrived(int result, unsigned flags);

  friend class BufferRing;

  io_uring ring_{};
  Mailbox& mailbox_;
  Callback<Ring, &Ring::mail_arrived> reader_{*this};
};

// Buffers the kernel picks from for a ring's receives (a provided-buffer
// ring): a receive holds none until bytes arrive, so a waiting connection
// costs no buffer of its own. A completion carrying bytes names its buffer,
// which is given back once they are taken. The ring's thread's only.
class BufferRing {
 public:
  // `count` (a power of two) buffers of `size` bytes, registered with `ring`.
  BufferRing(Ring& ring, unsigned count, unsigned size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // Makes a receive prepared in `entry` take its buffer from this ring.
  void select(io_uring_sqe* entry) const;
  // The buffer a completion's flags name (IORING_CQE_F_BUFFER set).
  static unsigned id(unsigned flags) { return flags >> IORING_CQE_BUFFER_SHIFT; }
  const char* data(unsigned id) const { return memory_.get() + std::size_t{id} * size_; }
  // Buffer `id` may be filled again.
  void give_back(unsigned id);

 private:
  static constexpr int kGroup = 0;
  Ring& ring_;
  const unsigned count_;
  const unsigned size_;
  io_uring_buf_ring* entries_ = nullptr;  // page-aligned, shared with the kernel
  std::unique_ptr<char[]> memory_;        // untouched until the kernel fills a buffer
};

// One operation awaited: `prepare` fills the entry; co_await gives the
// completion's result (a count, or -errno). `*current` names it while it is
// in flight, so that it can be cancelled.
template <typename Prepare>
class Operation final : public Completion {
 public:
  Operation(Ring& ring, Completion** current, Prepare prepare)
      : ring_(ring), current_(current), prepare_(std::move(prepare)) {}

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> handle) {
    handle_ = handle;
    prepare_(ring_.sqe(this));
    *current_ = this;
  }
  int await_resume() const noexcept { return result_; }
  void complete(int result, unsigned /*flags*/) override {
    result_ = result;
    *current_ = nullptr;
    handle_.resume();
  }

 private:
  Ring& ring_;
  Completion** current_;
  Prepare prepare_;
  std::coroutine_handle<> handle_;
  int result_ = 0;
};

// A coroutine that starts at once and frees itself when it ends; nobody
// awaits it. It must not let an exception out.
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

}  // namespace fib::uring
