/*
 * ring.h - single-producer single-consumer byte ring, lock-free, for an interrupt handler
 * on one side and the main loop on the other. Capacity is RING_BYTES - 1 (a power of two).
 * On a single-core Cortex-M, aligned 16-bit loads and stores are atomic; each index is
 * written by one side only, and the data byte is written before the index that publishes
 * it (the volatile accesses keep that order; the ports add a compiler barrier).
 */
#ifndef HIL_RING_H
#define HIL_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_BYTES 256u /* a power of two, <= 65536 */

typedef struct {
    volatile uint16_t head; /* written by the producer */
    volatile uint16_t tail; /* written by the consumer */
    uint8_t data[RING_BYTES];
} ring;

static inline size_t ring_used(const ring *r)
{
    return (uint16_t)(r->head - r->tail) & (RING_BYTES - 1u);
}

static inline size_t ring_free(const ring *r)
{
    return RING_BYTES - 1u - ring_used(r);
}

static inline int ring_put(ring *r, uint8_t b)
{
    uint16_t h = r->head;
    uint16_t next = (uint16_t)((h + 1u) & (RING_BYTES - 1u));
    if (next == r->tail) {
        return 0;
    }
    r->data[h] = b;
    r->head = next;
    return 1;
}

static inline int ring_get(ring *r, uint8_t *b)
{
    uint16_t t = r->tail;
    if (t == r->head) {
        return 0;
    }
    *b = r->data[t];
    r->tail = (uint16_t)((t + 1u) & (RING_BYTES - 1u));
    return 1;
}

/* All n bytes or none (the producer is the only writer of head, so free space only grows). */
static inline int ring_put_all(ring *r, const uint8_t *bytes, size_t n)
{
    size_t i;
    if (ring_free(r) < n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        (void)ring_put(r, bytes[i]);
    }
    return 1;
}

#endif /* HIL_RING_H */
