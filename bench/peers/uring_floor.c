/* The floor of io_uring request/response, as a peer for bench/compare.sh:
 * what an io_uring server on this machine costs at the least, as floor.c is
 * for a thread per connection. One thread per CPU (or THREADS), each with a
 * ring of its own (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
 * plain flags where the kernel refuses those) and a listener of its own on
 * HOST:PORT (SO_REUSEPORT); a multishot accept on it; one recv in flight per
 * connection. Every read is answered with "1\n", as floor.c answers it: the
 * reply's send (its completion skipped where the kernel can) and the
 * connection's next recv are queued together, and each batch goes in with
 * one io_uring_submit_and_wait. No parsing, no fib, no logging, no timers.
 * Build: cc -O2 -pthread -o uring_floor uring_floor.c -luring
 * Usage: uring_floor HOST:PORT [THREADS] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ENTRIES = 1024, BUFFER = 4096 };
/* What a completion is for, in the low bits of its user_data; a
 * connection's address is the rest (malloc aligns it to 16). */
enum { ACCEPT = 0, RECV = 1, SEND = 2, KIND = 3 };

struct connection {
  int fd;
  char buffer[BUFFER];
};

struct worker {
  int listener;
  pthread_t thread;
  struct io_uring ring;
  unsigned send_flags; /* IOSQE_CQE_SKIP_SUCCESS where the kernel has it */
  int multishot;       /* 0 once the kernel refused a multishot accept */
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
  io_uring_prep_recv(sqe, c->fd, c->buffer, sizeof c->buffer, 0);
  io_uring_sqe_set_data64(sqe, (uintptr_t)c | RECV);
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
        c = malloc(sizeof *c);
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
        reply(w, c);
        receive(w, c);
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
  }
  return NULL;
}

int main(int argc, char **argv) {
  char *colon = argc == 2 || argc == 3 ? strrchr(argv[1], ':') : NULL;
  cpu_set_t cpus;
  int threads = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  if (argc == 3) threads = atoi(argv[2]);
  if (colon == NULL || threads < 1) {
    fprintf(stderr, "usage: uring_floor HOST:PORT [THREADS]\n");
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
  for (int i = 0; i < threads; ++i) {
    int error = pthread_create(&workers[i].thread, NULL, serve, &workers[i]);
    if (error != 0) fail("pthread_create", error);
  }
  for (int i = 0; i < threads; ++i) pthread_join(workers[i].thread, NULL);
  return 0;
}
