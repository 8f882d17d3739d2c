/* src/cli — acks after a random delay, from a thread of their own: what
 * `kaffe consume --async` and the async bench scenario do with each message,
 * so acks arrive out of order and from another thread than the handler's.
 *
 * Threads: delayed_ack_push from any number of threads; new/destroy on one
 * thread. The callback runs on the delayed-ack thread (or, for what is still
 * pending at destroy, on the destroying thread), one item at a time. */
#ifndef KAFFE_SRC_CLI_DELAYED_ACK_H
#define KAFFE_SRC_CLI_DELAYED_ACK_H

#include <stddef.h>

typedef struct delayed_ack delayed_ack_t;

/* Called once per pushed item, when its delay has passed. */
typedef void (*delayed_ack_fn)(void *item, void *opaque);

/* A delayed-ack thread that calls fn(item, opaque) min_us..max_us
 * microseconds (uniformly random) after each push, or up to 0.5 ms later
 * (the thread checks for due items at least that often; a push does not
 * wake it). NULL on failure. */
delayed_ack_t *delayed_ack_new(long min_us, long max_us, delayed_ack_fn fn, void *opaque);

/* Schedules item. Thread-safe and lock-free: each pushing thread hands its
 * items over through a ring of its own (made on its first push; 4096 items),
 * and waits (yielding) only while that ring is full. Every push must have
 * returned before delayed_ack_destroy. */
void delayed_ack_push(delayed_ack_t *d, void *item);

/* Items pushed and not yet called back. Thread-safe. */
size_t delayed_ack_pending(delayed_ack_t *d);

/* Calls fn at once for everything still pending, stops the thread, frees d.
 * NULL is allowed. */
void delayed_ack_destroy(delayed_ack_t *d);

#endif
