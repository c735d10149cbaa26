/*
 * encoders.h - quadrature counts to the SI state of PROTOCOL.md section 6, for boards:
 * positions from counts (offset and scale per channel), rates by a backward difference over
 * the tick's own timestamps, smoothed by a first-order low-pass (a cutoff of about a fifth
 * of the tick rate keeps the lag under a period while a 4096-count encoder's one-count
 * steps, 1.5 mrad, stop reading as 3 rad/s spikes at 2 kHz). Float: the boards this is for
 * have an FPU (docs/firmware.md on FPU-less parts). No allocation; O(n) per sample.
 */
#ifndef HIL_ENCODERS_H
#define HIL_ENCODERS_H

#include <stdint.h>

#define ENC_MAX_CHANNELS 4

typedef struct {
    uint8_t n;                       /* position channels: 2 (cart-pole) or 3 (DIP) */
    uint8_t primed;
    float scale[ENC_MAX_CHANNELS];   /* SI units per count */
    int32_t offset[ENC_MAX_CHANNELS]; /* counts that read as zero (upright, track centre) */
    float cutoff_hz;
    float pos[ENC_MAX_CHANNELS];
    float vel[ENC_MAX_CHANNELS];
    uint32_t t_us;
} enc_estimator;

void enc_init(enc_estimator *e, uint8_t n, const float *scale, const int32_t *offset,
              float cutoff_hz);
/* counts at tick time t_us -> out[0..n) positions, out[n..2n) rates (SI). */
void enc_update(enc_estimator *e, const int32_t *counts, uint32_t t_us, float *out);

#endif /* HIL_ENCODERS_H */
