/* The floor of thread-per-connection request/response, as a peer for
 * bench/compare.sh: one thread per connection answering every read with
 * "1\n". No parsing, no fib, no logging: what any thread-per-connection
 * server on this machine costs at the least.
 * Build: cc -O2 -pthread -o floor floor.c    Usage: floor HOST:PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *serve(void *arg) {
  int fd = (int)(long)arg;
  char buf[4096];
  while (recv(fd, buf, sizeof buf, 0) > 0)
    if (send(fd, "1\n", 2, MSG_NOSIGNAL) != 2) break;
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  char *colon = argc == 2 ? strrchr(argv[1], ':') : NULL;
  if (colon == NULL) {
    fprintf(stderr, "usage: floor HOST:PORT\n");
    return 2;
  }
  *colon = '\0';
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
    fprintf(stderr, "floor: %s is not an IPv4 address\n", argv[1]);
    return 2;
  }
  int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 1024) != 0) {
    perror("floor");
    return 1;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t thread;
    if (pthread_create(&thread, &attr, serve, (void *)(long)fd) != 0) close(fd);
  }
}
