/* kaffe — a C library for consuming and producing Kafka messages, after the
 * Elixir library Kaffe, on top of librdkafka. This is the umbrella header. */
#ifndef KAFFE_KAFFE_H
#define KAFFE_KAFFE_H

#include <kaffe/version.h>
#include <kaffe/error.h>
#include <kaffe/message.h>
#include <kaffe/conf.h>
#include <kaffe/consumer.h>
#include <kaffe/producer.h>
#include <kaffe/stats.h>

#endif /* KAFFE_KAFFE_H */
