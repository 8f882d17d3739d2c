/* src/ack internals shared by ack.c and metadata.c (not part of the door). */
#ifndef KAFFE_SRC_ACK_INTERNAL_H
#define KAFFE_SRC_ACK_INTERNAL_H

#include "ack/ack.h"

/* Makes room for bit_count bits in snap->bits (reusing the buffer) and
 * zeroes them. KAFFE_OK or KAFFE_ERR_NOMEM (snap unchanged). */
kaffe_status_t ack__snapshot_reserve(ack_snapshot_t *snap, size_t bit_count);

#endif
