// The floor of what a proxy adds on this machine (see Sources/Gateway/RelayFloor.swift): a TCP
// relay on plain system calls with no protocol work, so its figure is the kernel's and the
// scheduler's cost of one more loopback hop each way.
#define _GNU_SOURCE
#include "relay_floor.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_BYTES = 1 << 16, MAX_EVENTS = 256 };

struct loop_args {
    int listener;
    int upstream_port;
};

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

int llmux_relay_floor_listen(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in address = loopback(port);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 4096) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int llmux_relay_floor_port(int listener) {
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    if (getsockname(listener, (struct sockaddr *)&address, &length) != 0) return -errno;
    return ntohs(address.sin_port);
}

// An epoll entry carries the readable descriptor and its peer, so an event needs no lookup.
static void watch(int epoll, int fd, int peer) {
    struct epoll_event event;
    event.events = EPOLLIN;
    event.data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)(uint32_t)peer << 32;
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

static int write_all(int fd, const char *bytes, ssize_t count) {
    while (count > 0) {
        ssize_t n = write(fd, bytes, (size_t)count);
        if (n <= 0) return 0;
        bytes += n;
        count -= n;
    }
    return 1;
}

static void accept_all(int epoll, int listener, int upstream_port) {
    int one = 1;
    for (;;) {
        // Accepted sockets stay blocking: a read follows readiness, and writing a chunk to a
        // loopback socket does not wait in this benchmark.
        int client = accept(listener, NULL, NULL);
        if (client < 0) return;
        int upstream = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address = loopback(upstream_port);
        if (upstream < 0 || connect(upstream, (struct sockaddr *)&address, sizeof address) != 0) {
            close(client);
            if (upstream >= 0) close(upstream);
            continue;
        }
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        watch(epoll, client, upstream);
        watch(epoll, upstream, client);
    }
}

static void *serve(void *raw) {
    struct loop_args args = *(struct loop_args *)raw;
    free(raw);
    int epoll = epoll_create1(0);
    if (epoll < 0) return NULL;
    watch(epoll, args.listener, -1);
    struct epoll_event events[MAX_EVENTS];
    static __thread char buffer[BUFFER_BYTES];
    for (;;) {
        int ready = epoll_wait(epoll, events, MAX_EVENTS, -1);
        // Descriptors closed earlier in this batch: their events later in it are stale, and
        // their numbers may already name another thread's new connection.
        int closed[2 * MAX_EVENTS];
        int closed_count = 0;
        for (int i = 0; i < ready; i++) {
            int fd = (int)(uint32_t)events[i].data.u64;
            int peer = (int)(uint32_t)(events[i].data.u64 >> 32);
            if (fd == args.listener) {
                accept_all(epoll, args.listener, args.upstream_port);
                continue;
            }
            int stale = 0;
            for (int j = 0; j < closed_count; j++) stale |= closed[j] == fd;
            if (stale) continue;
            ssize_t count = read(fd, buffer, sizeof buffer);
            if (count <= 0 || !write_all(peer, buffer, count)) {
                close(fd);  // closing takes both out of the epoll set
                close(peer);
                closed[closed_count++] = fd;
                closed[closed_count++] = peer;
            }
        }
    }
    return NULL;
}

int llmux_relay_floor_start(int listener, int upstream_port) {
    struct loop_args *args = malloc(sizeof *args);
    if (!args) return -ENOMEM;
    args->listener = listener;
    args->upstream_port = upstream_port;
    pthread_t thread;
    int error = pthread_create(&thread, NULL, serve, args);
    if (error != 0) {
        free(args);
        return -error;
    }
    pthread_detach(thread);
    return 0;
}
