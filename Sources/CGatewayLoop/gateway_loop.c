#define _GNU_SOURCE
#include "gateway_loop.h"

#include <stddef.h>
#include <sys/socket.h>

int llmux_accept_nonblocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
