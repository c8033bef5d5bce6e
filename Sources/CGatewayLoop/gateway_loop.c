#define _GNU_SOURCE
#include "gateway_loop.h"

#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>

int llmux_accept_nonblocking(int listener) {
    return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void llmux_name_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}
