/* src/cli — buffered line output whose items are released only after their
 * lines reached the file descriptor: what lets `kaffe consume` write in
 * batches yet ack a message only once its line is written out, so a SIGKILL
 * never loses a line whose offset was committed.
 *
 * Threads: line_out_push from any number of threads (worker threads); a
 * flusher thread of its own writes what is buffered every flush_ms; a push
 * that fills the buffer writes it at once, on the pushing thread. Writes keep
 * push order (one writer at a time, buffers swapped under the write lock), and
 * the release callback runs after the write(2) calls that carried an item's
 * line returned, in push order, on the writing thread. new/destroy on one
 * thread. */
#ifndef KAFFE_SRC_CLI_LINE_OUT_H
#define KAFFE_SRC_CLI_LINE_OUT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct line_out line_out_t;

/* Called once per pushed item whose line was written out. */
typedef void (*line_out_release_fn)(void *item, void *opaque);

/* Writes to fd (not closed by destroy), in writes of about flush_bytes, or
 * every flush_ms when less is buffered. NULL when out of memory or no
 * thread. */
line_out_t *line_out_new(int fd, size_t flush_bytes, int flush_ms, line_out_release_fn release,
                         void *opaque);

/* Buffers line[0..len) (copied) and takes item, released once the line is
 * written. When a write fails (EPIPE, ENOSPC, ...), the failed batch's items
 * are never released and every later push is dropped likewise: the caller
 * sees it in line_out_failed() and must not count those items as done. */
void line_out_push(line_out_t *o, const void *line, size_t len, void *item);

/* 0, or the errno of the first failed write. Thread-safe. */
int line_out_failed(line_out_t *o);

/* Writes what is buffered, releases its items, stops the flusher thread and
 * frees o. NULL is allowed. */
void line_out_destroy(line_out_t *o);

#endif
