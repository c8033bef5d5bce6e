#ifndef LLMUX_RELAY_FLOOR_H
#define LLMUX_RELAY_FLOOR_H

/// Opens a listening socket on 127.0.0.1:port (0: any free port) with SO_REUSEPORT, so that
/// several listeners, one per relay thread, can share a port. Returns the descriptor, or
/// minus the errno of the failure.
int llmux_relay_floor_listen(int port);

/// The port a listener is bound to, or minus errno.
int llmux_relay_floor_port(int listener);

/// Serves `listener` on a new detached thread with its own epoll loop: every accepted client
/// gets its own connection to 127.0.0.1:upstream_port, and every byte read on either side is
/// written to the other, until one side closes. Returns 0, or minus errno.
int llmux_relay_floor_start(int listener, int upstream_port);

#endif
