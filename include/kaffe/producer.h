/* kaffe — the producer. (Being built: see issue "The producer".) */
#ifndef KAFFE_PRODUCER_H
#define KAFFE_PRODUCER_H

#include <kaffe/conf.h>
#include <kaffe/error.h>
#include <kaffe/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kaffe_producer_s kaffe_producer_t;

#ifdef __cplusplus
}
#endif

#endif /* KAFFE_PRODUCER_H */
