/* encoders.c - see encoders.h. */
#include "encoders.h"

#include <string.h>

void enc_init(enc_estimator *e, uint8_t n, const float *scale, const int32_t *offset,
              float cutoff_hz)
{
    memset(e, 0, sizeof *e);
    e->n = n > ENC_MAX_CHANNELS ? ENC_MAX_CHANNELS : n;
    memcpy(e->scale, scale, e->n * sizeof *scale);
    memcpy(e->offset, offset, e->n * sizeof *offset);
    e->cutoff_hz = cutoff_hz;
}

void enc_update(enc_estimator *e, const int32_t *counts, uint32_t t_us, float *out)
{
    uint8_t i;
    uint32_t dt_us = t_us - e->t_us;
    float dt = (float)dt_us * 1e-6f;
    /* alpha = dt / (dt + tau), tau = 1 / (2 pi fc) */
    float tau = 1.0f / (6.28318531f * e->cutoff_hz);
    float alpha = dt / (dt + tau);
    for (i = 0; i < e->n; i++) {
        float p = (float)(counts[i] - e->offset[i]) * e->scale[i];
        if (e->primed && dt_us > 0) {
            float raw = (p - e->pos[i]) / dt;
            e->vel[i] += alpha * (raw - e->vel[i]);
        }
        e->pos[i] = p;
        out[i] = p;
        out[e->n + i] = e->vel[i];
    }
    e->t_us = t_us;
    e->primed = 1;
}
