/* The floor of io_uring request/response, as a peer for bench/compare.sh:
 * what an io_uring server on this machine costs at the least, as floor.c is
 * for a thread per connection. One thread per CPU (or THREADS), each with a
 * ring of its own (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
 * plain flags where the kernel refuses those) and a listener of its own on
 * HOST:PORT (SO_REUSEPORT); a multishot accept on it. Every read is answered
 * with "1\n", as floor.c answers it, by a send whose completion is skipped
 * where the kernel can (IOSQE_CQE_SKIP_SUCCESS); each batch goes in with one
 * io_uring_submit_and_wait. No parsing, no fib, no logging, no timers.
 *
 * Two ways to receive. By default, one recv in flight per connection, queued
 * again with each reply: two submissions and one completion per request.
 * With "multishot", each connection's receive is armed once and stays armed
 * (a multishot recv), taking a buffer from the thread's ring of provided
 * buffers only when bytes arrive; the buffer goes back at once, so an idle
 * connection holds none. One submission and one completion per request; a
 * receive that found no buffer free (ENOBUFS) is armed again.
 *
 * SIGUSR1 prints, and SIGTERM or SIGINT print then exit on, one line on
 * stderr: "ops: requests R submissions S completions C", the reads answered
 * and the ring operations so far, so that a client's run can be counted.
 * Build: cc -O2 -pthread -o uring_floor uring_floor.c -luring
 * Usage: uring_floor HOST:PORT [THREADS] [multishot] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ENTRIES = 1024, BUFFER = 4096 };
/* Multishot: the provided buffers of each thread, buffer group 0. A request
 * is a few bytes and its buffer goes back at once. */
enum { RING_BUFFERS = 1024, RING_BUFFER = 1024, GROUP = 0 };
/* What a completion is for, in the low bits of its user_data; a
 * connection's address is the rest (malloc aligns it to 16). */
enum { ACCEPT = 0, RECV = 1, SEND = 2, KIND = 3 };

struct connection {
  int fd;
  char buffer[]; /* BUFFER bytes; none with multishot receives */
};

struct worker {
  int listener;
  pthread_t thread;
  struct io_uring ring;
  unsigned send_flags; /* IOSQE_CQE_SKIP_SUCCESS where the kernel has it */
  int multishot;       /* 0 once the kernel refused a multishot accept */
  int multishot_recv;  /* receives armed once, on the provided buffers */
  struct io_uring_buf_ring *buffers;
  char *buffer_memory;
  /* Counted by this thread, read by main(). */
  _Atomic uint64_t requests, submissions, completions;
};

static void fail(const char *what, int error) {
  fprintf(stderr, "uring_floor: %s: %s\n", what, strerror(error));
  exit(1);
}

/* A free submission entry: when the queue is full, what is in it goes in first. */
static struct io_uring_sqe *entry(struct worker *w) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
  if (sqe == NULL) {
    io_uring_submit(&w->ring);
    sqe = io_uring_get_sqe(&w->ring);
    if (sqe == NULL) fail("io_uring_get_sqe", EBUSY);
  }
  atomic_fetch_add_explicit(&w->submissions, 1, memory_order_relaxed);
  return sqe;
}

static void accept_more(struct worker *w) {
  struct io_uring_sqe *sqe = entry(w);
  if (w->multishot)
    io_uring_prep_multishot_accept(sqe, w->listener, NULL, NULL, 0);
  else
    io_uring_prep_accept(sqe, w->listener, NULL, NULL, 0);
  io_uring_sqe_set_data64(sqe, ACCEPT);
}

static void receive(struct worker *w, struct connection *c) {
  struct io_uring_sqe *sqe = entry(w);
  if (w->multishot_recv) {
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = GROUP;
  } else {
    io_uring_prep_recv(sqe, c->fd, c->buffer, BUFFER, 0);
  }
  io_uring_sqe_set_data64(sqe, (uintptr_t)c | RECV);
}

/* Gives buffer `id` back to the kernel. */
static void give_back(struct worker *w, unsigned id) {
  io_uring_buf_ring_add(w->buffers, w->buffer_memory + (size_t)id * RING_BUFFER, RING_BUFFER, (unsigned short)id,
                        io_uring_buf_ring_mask(RING_BUFFERS), 0);
  io_uring_buf_ring_advance(w->buffers, 1);
}

static void provide_buffers(struct worker *w) {
  size_t bytes = RING_BUFFERS * sizeof(struct io_uring_buf);
  if (posix_memalign((void **)&w->buffers, (size_t)sysconf(_SC_PAGESIZE), bytes) != 0) fail("posix_memalign", ENOMEM);
  w->buffer_memory = malloc((size_t)RING_BUFFERS * RING_BUFFER);
  if (w->buffer_memory == NULL) fail("malloc", ENOMEM);
  io_uring_buf_ring_init(w->buffers);
  struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)w->buffers, .ring_entries = RING_BUFFERS, .bgid = GROUP};
  int error = io_uring_register_buf_ring(&w->ring, &reg, 0);
  if (error < 0) fail("io_uring_register_buf_ring", -error);
  for (unsigned id = 0; id < RING_BUFFERS; ++id) give_back(w, id);
}

static void reply(struct worker *w, struct connection *c) {
  struct io_uring_sqe *sqe = entry(w);
  io_uring_prep_send(sqe, c->fd, "1\n", 2, MSG_NOSIGNAL);
  /* No connection in its user_data: a failed send's completion may come
   * after the connection's recv has seen the end and freed it. */
  io_uring_sqe_set_data64(sqe, SEND);
  sqe->flags |= w->send_flags;
}

static void complete(struct worker *w, const struct io_uring_cqe *cqe) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  struct connection *c = (struct connection *)(uintptr_t)(data & ~(uint64_t)KIND);
  switch (data & KIND) {
    case ACCEPT:
      if (cqe->res == -EINVAL && w->multishot) {
        w->multishot = 0; /* a kernel before 5.19: one accept at a time */
      } else if (cqe->res >= 0) {
        int one = 1;
        setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = malloc(sizeof *c + (w->multishot_recv ? 0 : BUFFER));
        if (c == NULL) {
          close(cqe->res);
        } else {
          c->fd = cqe->res;
          receive(w, c);
        }
      }
      if (!(cqe->flags & IORING_CQE_F_MORE)) accept_more(w);
      break;
    case RECV:
      if (cqe->res > 0) {
        atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
        if (cqe->flags & IORING_CQE_F_BUFFER) give_back(w, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        reply(w, c);
        if (!w->multishot_recv || !(cqe->flags & IORING_CQE_F_MORE)) receive(w, c);
      } else if (cqe->res == -ENOBUFS) {
        receive(w, c); /* no buffer was free: the bytes wait in the socket */
      } else {
        close(c->fd);
        free(c);
      }
      break;
    default: /* a send that failed: its connection's recv sees the end */
      break;
  }
}

static void *serve(void *arg) {
  struct worker *w = arg;
  struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
  int error = io_uring_queue_init_params(ENTRIES, &w->ring, &params);
  if (error == -EINVAL) { /* a kernel before 6.1 */
    memset(&params, 0, sizeof params);
    error = io_uring_queue_init_params(ENTRIES, &w->ring, &params);
  }
  if (error < 0) fail("io_uring_queue_init_params", -error);
  w->send_flags = params.features & IORING_FEAT_CQE_SKIP ? IOSQE_CQE_SKIP_SUCCESS : 0;
  w->multishot = 1;
  if (w->multishot_recv) provide_buffers(w);
  accept_more(w);
  for (;;) {
    error = io_uring_submit_and_wait(&w->ring, 1);
    if (error < 0 && error != -EINTR) fail("io_uring_submit_and_wait", -error);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&w->ring, head, cqe) {
      complete(w, cqe);
      ++seen;
    }
    io_uring_cq_advance(&w->ring, seen);
    atomic_fetch_add_explicit(&w->completions, seen, memory_order_relaxed);
  }
  return NULL;
}

static void print_ops(struct worker *workers, int threads) {
  uint64_t requests = 0, submissions = 0, completions = 0;
  for (int i = 0; i < threads; ++i) {
    requests += atomic_load_explicit(&workers[i].requests, memory_order_relaxed);
    submissions += atomic_load_explicit(&workers[i].submissions, memory_order_relaxed);
    completions += atomic_load_explicit(&workers[i].completions, memory_order_relaxed);
  }
  fprintf(stderr, "ops: requests %llu submissions %llu completions %llu\n", (unsigned long long)requests,
          (unsigned long long)submissions, (unsigned long long)completions);
  fflush(stderr);
}

int main(int argc, char **argv) {
  char *colon = argc >= 2 && argc <= 4 ? strrchr(argv[1], ':') : NULL;
  cpu_set_t cpus;
  int threads = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1, multishot_recv = 0;
  for (int i = 2; i < argc; ++i) {
    if (strcmp(argv[i], "multishot") == 0)
      multishot_recv = 1;
    else
      threads = atoi(argv[i]);
  }
  if (colon == NULL || threads < 1) {
    fprintf(stderr, "usage: uring_floor HOST:PORT [THREADS] [multishot]\n");
    return 2;
  }
  *colon = '\0';
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "uring_floor: %s is not an IPv4 address\n", argv[1]);
    return 2;
  }
  struct worker *workers = calloc((size_t)threads, sizeof *workers);
  if (workers == NULL) fail("calloc", ENOMEM);
  /* Every listener before any thread: the first connection may go to any of them. */
  for (int i = 0; i < threads; ++i) {
    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 1024) != 0) {
      perror("uring_floor");
      return 1;
    }
    workers[i].listener = listener;
    if (i == 0) { /* port 0: the others share the port the first was given */
      socklen_t size = sizeof addr;
      getsockname(listener, (struct sockaddr *)&addr, &size);
    }
  }
  /* The signals come to main() alone, which waits for them. */
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, NULL);
  for (int i = 0; i < threads; ++i) {
    workers[i].multishot_recv = multishot_recv;
    int error = pthread_create(&workers[i].thread, NULL, serve, &workers[i]);
    if (error != 0) fail("pthread_create", error);
  }
  for (;;) {
    int number = 0;
    sigwait(&signals, &number);
    print_ops(workers, threads);
    if (number != SIGUSR1) return 0;
  }
}
