#include "uring.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include <fmt/format.h>

namespace fib::uring {

namespace {

// liburing maps and unmaps a ring's memory with system calls of its own,
// which ThreadSanitizer does not see: a ring ended on one thread and the
// next one mapped at the same address on another would seem to share
// memory. Each ring's end is released here before its memory goes, and
// each new ring acquires it: what the old ring's thread wrote happens
// before what the new one's writes, as the kernel orders them.
std::atomic<unsigned> rings_ended{0};

// Why io_uring_setup failed, in words a user can act on.
std::string why_not(int error) {
  switch (error) {
    case EPERM:
    case EACCES:
      return "it is forbidden here: a seccomp filter (as container runtimes install) or the sysctl "
             "kernel.io_uring_disabled";
    case ENOSYS: return "this kernel has no io_uring (it needs Linux 6.0 or later, built with it)";
    case ENOMEM: return "no memory could be locked for its rings (see ulimit -l)";
    default: return "the kernel refused it";
  }
}

}  // namespace

void check_available() {
  io_uring probe{};
  const int result = io_uring_queue_init(2, &probe, 0);
  if (result < 0) {
    throw std::runtime_error(
        fmt::format("--mode uring: io_uring cannot be set up: {} ({}); --mode coroutine "
                    "serves the same on epoll",
                    std::strerror(-result), why_not(-result)));
  }
  // Receives take their buffers from a provided-buffer ring (Linux 5.19),
  // and stay armed while the connection lasts (multishot, Linux 6.0).
  int registered = -ENOMEM;
  void* page = ::mmap(nullptr, sizeof(io_uring_buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page != MAP_FAILED) {
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<std::uintptr_t>(page);
    registration.ring_entries = 1;
    registered = io_uring_register_buf_ring(&probe, &registration, 0);
  }
  io_uring_queue_exit(&probe);
  if (page != MAP_FAILED) ::munmap(page, sizeof(io_uring_buf));
  if (registered < 0) {
    throw std::runtime_error(
        fmt::format("--mode uring: io_uring cannot be set up: {} (this kernel has no provided-buffer rings: it "
                    "needs Linux 6.0 or later); --mode coroutine serves the same on epoll",
                    std::strerror(-registered)));
  }
}

Mailbox::Mailbox() : event_(::eventfd(0, EFD_CLOEXEC)) {
  if (!event_) throw std::system_error(errno, std::generic_category(), "eventfd");
}

bool Mailbox::post(Completion* completion) {
  const std::lock_guard lock(mutex_);
  if (closed_) return false;
  posted_.push_back(completion);
  if (std::exchange(signalled_, true)) return true;
  const std::uint64_t one = 1;
  (void)!::write(event_.get(), &one, sizeof one);  // cannot fail but for a full counter, which still wakes
  return true;
}

bool Mailbox::close() {
  const std::lock_guard lock(mutex_);
  closed_ = posted_.empty();
  return closed_;
}

std::vector<Completion*> Mailbox::take() {
  const std::lock_guard lock(mutex_);
  signalled_ = false;
  return std::exchange(posted_, {});
}

Ring::Ring(unsigned entries, Mailbox& mailbox) : mailbox_(mailbox) {
  rings_ended.load(std::memory_order_acquire);
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int result = io_uring_queue_init_params(entries, &ring_, &params);
  if (result == -EINVAL) {  // a kernel before 6.1
    params = {};
    result = io_uring_queue_init_params(entries, &ring_, &params);
  }
  if (result < 0) throw std::system_error(-result, std::generic_category(), "io_uring_setup");
  read_mail();
}

Ring::~Ring() {
  rings_ended.fetch_add(1, std::memory_order_release);
  io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::sqe(Completion* completion) {
  io_uring_sqe* entry = io_uring_get_sqe(&ring_);
  while (entry == nullptr) {
    io_uring_submit(&ring_);
    entry = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data(entry, completion);
  return entry;
}

void Ring::cancel(Completion* completion) { io_uring_prep_cancel(sqe(nullptr), completion, 0); }

void Ring::run_once() {
  const int waited = io_uring_submit_and_wait(&ring_, 1);
  if (waited < 0 && waited != -EINTR && waited != -EAGAIN && waited != -EBUSY)
    throw std::system_error(-waited, std::generic_category(), "io_uring_enter");
  struct Done {
    Completion* completion;
    int result;
    unsigned flags;
  };
  std::array<io_uring_cqe*, 64> entries{};
  for (;;) {
    const unsigned count = io_uring_peek_batch_cqe(&ring_, entries.data(), entries.size());
    if (count == 0) return;
    // Copied out first: what a completion does may queue more entries.
    std::array<Done, entries.size()> done{};
    for (unsigned i = 0; i < count; ++i)
      done[i] = {static_cast<Completion*>(io_uring_cqe_get_data(entries[i])), entries[i]->res, entries[i]->flags};
    io_uring_cq_advance(&ring_, count);
    for (unsigned i = 0; i < count; ++i) {
      if (done[i].completion != nullptr) done[i].completion->complete(done[i].result, done[i].flags);
    }
  }
}

BufferRing::BufferRing(Ring& ring, unsigned count, unsigned size) : ring_(ring), count_(count), size_(size) {
  const std::size_t bytes = std::size_t{count} * sizeof(io_uring_buf);
  void* entries = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (entries == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
  entries_ = static_cast<io_uring_buf_ring*>(entries);
  io_uring_buf_ring_init(entries_);
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<std::uintptr_t>(entries_);
  registration.ring_entries = count;
  registration.bgid = kGroup;
  if (const int result = io_uring_register_buf_ring(&ring_.ring_, &registration, 0); result < 0) {
    ::munmap(entries_, bytes);
    throw std::system_error(-result, std::generic_category(), "io_uring_register_buf_ring");
  }
  memory_ = std::make_unique_for_overwrite<char[]>(std::size_t{count} * size);
  for (unsigned id = 0; id < count; ++id)
    io_uring_buf_ring_add(entries_, memory_.get() + std::size_t{id} * size, size, static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(count), static_cast<int>(id));
  io_uring_buf_ring_advance(entries_, static_cast<int>(count));
}

BufferRing::~BufferRing() {
  io_uring_unregister_buf_ring(&ring_.ring_, kGroup);
  ::munmap(entries_, std::size_t{count_} * sizeof(io_uring_buf));
}

void BufferRing::select(io_uring_sqe* entry) const {
  entry->flags |= IOSQE_BUFFER_SELECT;
  entry->buf_group = kGroup;
}

void BufferRing::give_back(unsigned id) {
  io_uring_buf_ring_add(entries_, memory_.get() + std::size_t{id} * size_, size_, static_cast<unsigned short>(id),
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(entries_, 1);
}

void Ring::read_mail() {
  io_uring_prep_read(sqe(&reader_), mailbox_.fd(), mailbox_.buffer(), sizeof(std::uint64_t), 0);
}

void Ring::mail_arrived(int /*result*/, unsigned /*flags*/) {
  read_mail();
  for (Completion* completion : mailbox_.take()) completion->complete(0, 0);
}

}  // namespace fib::uring
