/* src/common — names the calling thread (visible in top -H, perf --sort comm,
 * gdb), so that kaffe's threads can be told apart from the application's and
 * librdkafka's ("rdk:..."). */
#ifndef KAFFE_SRC_COMMON_THREAD_NAME_H
#define KAFFE_SRC_COMMON_THREAD_NAME_H

/* Names the calling thread; name is cut to the system's 15 characters. A
 * failure is ignored: a name is a debugging aid. */
void common_set_thread_name(const char *name);

#endif
