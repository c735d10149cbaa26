/* libhil's recording: controller.rec in the run folder, one row per control sent, in the
 * format hil/recording writes and reads (docs/recording.md, format version 1): a header (magic,
 * version, the JSON description of the columns and the run, its CRC32), then chunks of rows
 * (magic, index, rows, dropped, CRC32, the rows as little-endian int64 / float64), then an end
 * marker. Rows are buffered and written as one chunk of CHUNK_ROWS, after a control is sent,
 * never before; the rest and the end marker at the end, then fsync. */
#define _POSIX_C_SOURCE 200809L
#include "hil_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEAD_COLUMNS 7

static const char *const HEAD[HEAD_COLUMNS][2] = {
    {"control_seq", ""}, {"state_seq", ""}, {"state_t_ns", "ns"}, {"rx_ns", "ns"},
    {"send_ns", "ns"}, {"compute_ns", "ns"}, {"lateness_ns", "ns"}};

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    if (table[1] == 0)
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t v = i;
            for (int k = 0; k < 8; k++) v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
            table[i] = v;
        }
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void column(FILE *f, const char *name, const char *unit, const char *dtype, int first)
{
    fputs(first ? "{\"name\": " : ", {\"name\": ", f);
    hil_json_str(f, name);
    fputs(", \"unit\": ", f);
    hil_json_str(f, unit);
    fprintf(f, ", \"dtype\": \"%s\", \"label\": \"\"}", dtype);
}

/* The header's JSON description (its columns and the run), as hil/recording writes it. */
static void describe(FILE *f, const hil_client *c, const char *law_name, double sigma_floor)
{
    const hil_description *d = &c->desc;
    fputs("{\"columns\": [", f);
    for (int i = 0; i < HEAD_COLUMNS; i++) column(f, HEAD[i][0], HEAD[i][1], "i8", i == 0);
    for (int i = 0; i < d->n_states; i++) column(f, d->state_names[i], d->state_units[i], "f8", 0);
    for (int i = 0; i < d->n_inputs; i++) column(f, d->input_names[i], d->input_units[i], "f8", 0);
    column(f, "sigma", "", "f8", 0);
    column(f, "mass_condition", "", "f8", 0);
    fputs("], \"meta\": {\"run_id\": ", f);
    hil_json_str(f, c->run_id);
    fputs(", \"process\": \"controller\", \"controller\": ", f);
    hil_json_str(f, law_name);
    fprintf(f, ", \"t0_ns\": %lld, \"mode\": \"%s\", \"period_ns\": %lld, \"sigma_floor\": %.17g, "
            "\"input_columns\": [", (long long)d->t0_ns, d->lockstep ? "lockstep" : "realtime",
            (long long)d->period_ns, sigma_floor);
    for (int i = 0; i < d->n_inputs; i++) {
        fputs(i ? ", " : "", f);
        hil_json_str(f, d->input_names[i]);
    }
    fprintf(f, "]}, \"created_unix_s\": %lld.0}", (long long)time(NULL));
}

static void failed(hil_recorder *r, const char *what)
{
    if (r->error[0] == '\0') snprintf(r->error, sizeof r->error, "%s", what);
}

static void write_all(hil_recorder *r, const unsigned char *p, size_t n)
{
    while (n > 0 && r->fd >= 0) {
        ssize_t done = write(r->fd, p, n);
        if (done <= 0) {
            failed(r, "write to controller.rec failed (disk full?)");
            return;
        }
        p += done;
        n -= (size_t)done;
        r->bytes += done;
    }
}

static void write_chunk(hil_recorder *r, const char *magic)
{
    unsigned char head[24];
    size_t payload = (size_t)r->rows * (size_t)r->columns * 8;
    memcpy(head, magic, 4);
    put_le(head + 4, r->index++, 4);
    put_le(head + 8, (uint64_t)r->rows, 4);
    put_le(head + 12, 0, 8); /* nothing is dropped: rows wait in the buffer, never a queue */
    put_le(head + 20, crc32_update(crc32_update(0, head, 20), r->rows_buf, payload), 4);
    write_all(r, head, sizeof head);
    write_all(r, r->rows_buf, payload);
    r->written += r->rows;
    r->chunks++;
    r->rows = 0;
}

/* controller.rec opened and its header written; a failure is kept in `error` (the report's
 * recording_error gate fails the run) and the run goes on without a recording. */
void hil_record_open(hil_client *c, const char *law_name, double sigma_floor)
{
    hil_recorder *r = &c->recorder;
    char path[1100], *json = NULL;
    size_t json_len = 0;
    unsigned char head[14], crc[4];
    FILE *f;
    r->fd = -1;
    r->columns = HEAD_COLUMNS + c->desc.n_states + c->desc.n_inputs + 2;
    r->enabled = 1;
    snprintf(path, sizeof path, "%s/controller.rec", c->out_dir);
    if ((f = open_memstream(&json, &json_len)) == NULL) {
        failed(r, "out of memory for controller.rec's header");
        return;
    }
    describe(f, c, law_name, sigma_floor);
    fclose(f);
    if ((r->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644)) < 0)
        failed(r, "cannot create controller.rec in the run folder (HIL_OUT): is it writable?");
    memcpy(head, "HILREC\r\n", 8);
    put_le(head + 8, 1, 2);
    put_le(head + 10, json_len, 4);
    put_le(crc, crc32_update(0, (const unsigned char *)json, json_len), 4);
    write_all(r, head, sizeof head);
    write_all(r, (const unsigned char *)json, json_len);
    write_all(r, crc, sizeof crc);
    free(json);
}

/* One row per control sent; a full buffer is written as one chunk. */
void hil_record_row(hil_client *c, const hil_state *s, const double *u, int64_t compute_ns,
                    double sigma, double condition)
{
    hil_recorder *r = &c->recorder;
    const int64_t head[HEAD_COLUMNS] = {c->controls_sent, s->seq, s->t_ns, s->rx_ns,
                                        c->last_send_ns, compute_ns, c->lateness_ns};
    unsigned char *row;
    uint64_t bits;
    int k = 0;
    if (!r->enabled || r->fd < 0) return;
    row = r->rows_buf + (size_t)r->rows * (size_t)r->columns * 8;
    for (int i = 0; i < HEAD_COLUMNS; i++) put_le(row + 8 * k++, (uint64_t)head[i], 8);
    for (int i = 0; i < c->desc.n_states + c->desc.n_inputs + 2; i++) {
        double v = i < c->desc.n_states ? s->x[i]
                   : i < c->desc.n_states + c->desc.n_inputs ? u[i - c->desc.n_states]
                   : i == c->desc.n_states + c->desc.n_inputs ? sigma : condition;
        memcpy(&bits, &v, sizeof bits);
        put_le(row + 8 * k++, bits, 8);
    }
    if (++r->rows == HIL_RECORD_CHUNK_ROWS) write_chunk(r, "HRCK");
}

/* The rows left, the end marker, fsync, close: a closed recording. */
void hil_record_close(hil_client *c)
{
    hil_recorder *r = &c->recorder;
    if (!r->enabled || r->fd < 0) return;
    if (r->rows > 0) write_chunk(r, "HRCK");
    write_chunk(r, "HREN");
    if (fsync(r->fd) == 0) r->fsyncs++;
    close(r->fd);
    r->fd = -1;
}
