// The Linux calls the gateway's loops make (Sources/Gateway/Loop) that Swift's Glibc module
// does not carry: epoll, eventfd, accept4 and thread names.
#ifndef LLMUX_GATEWAY_LOOP_H
#define LLMUX_GATEWAY_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/// Names the calling thread (at most 15 bytes are kept), for top and perf.
void llmux_name_thread(const char *name);

/// Accepts a connection as a non-blocking, close-on-exec descriptor; -1 and errno as accept4.
int llmux_accept_nonblocking(int listener);

/// The epoll event bits, as plain integers.
static const uint32_t LLMUX_EPOLLIN = EPOLLIN;
static const uint32_t LLMUX_EPOLLOUT = EPOLLOUT;
static const uint32_t LLMUX_EPOLLERR = EPOLLERR;
static const uint32_t LLMUX_EPOLLHUP = EPOLLHUP;

#endif
