/*
 * ports/host/main.c - the rig core on Linux: its UART is the master side of a
 * pseudo-terminal, its timer a schedule on CLOCK_MONOTONIC, its pendulum simulated behind
 * the HAL (sim/). It is the emulated rig `hil run` starts with rig_emulator.kind: host.
 *
 *   hil-rig-host key=value...
 *
 * Firmware keys (sim/sim.c): rate_hz, watchdog_ms, rig_id, track_limit_m, clock_start_us,
 * substeps, initial_state, the DIPParams fields. Port keys: link (a symlink made to point at
 * the pseudo-terminal when it is ready), out (folder for rig.json), baud, seed,
 * corrupt_byte_rate, drop_frame_rate, added_latency_ms, unplug_after_s, sched_fifo,
 * sched_priority.
 *
 * The line behaves as plant_server/rig_emulator.py's: bytes leave and arrive at the baud
 * rate (each byte is handed over when its last bit would have crossed the wire), and the
 * fault knobs are seeded: each byte each way XORed with a random non-zero value at
 * corrupt_byte_rate, each frame each way lost at drop_frame_rate, added_latency_ms each way,
 * and unplug_after_s after the first CLEAR the pseudo-terminal is closed and the link
 * removed, as pulling a USB cable does. A stall of this process (woken more than 5 ms late)
 * is counted and the watchdog deadline moves by its length: the emulator's own stall is not
 * the host's silence. SIGINT or SIGTERM (or the parent ending) stops it; it writes rig.json.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* openpty, ppoll, cfmakeraw */
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hal.h"
#include "rig.h"
#include "sim.h"

#define STALL_NS 5000000LL
#define MAX_IDLE_NS 50000000LL
#define RXQ_BYTES 65536u      /* bytes received, waiting for their arrival time */
#define TXQ_FRAMES 64u        /* frames queued for the line: the MCU's transmit buffer */

typedef struct {
    double byte_ns;
    double free_at_ns;
    double corrupt_rate, drop_rate;
    uint64_t rng;
    long long clean_left;
    unsigned long corrupted_bytes, dropped_frames;
} line;

typedef struct {
    long long due_ns;
    uint8_t len;
    uint8_t bytes[HP_MAX_FRAME_BYTES];
} tx_frame;

static struct {
    long long due_ns[RXQ_BYTES];
    uint8_t bytes[RXQ_BYTES];
    unsigned head, tail;
} rxq;

static tx_frame txq[TXQ_FRAMES];
static unsigned txq_head, txq_tail;

static line tx_line, rx_line;
static rig the_rig;
static sim_config cfg;
static int master_fd = -1, slave_fd = -1;
static char pty_path[256];
static const char *link_path, *out_dir;
static long baud = 460800;
static unsigned long long seed;
static double added_latency_ms, unplug_after_s = -1;
static int sched_fifo, sched_priority = 50;
static long long boot_ns, now_ns_cached, added_latency_ns;
static volatile sig_atomic_t stop_flag;
static unsigned long bytes_tx, bytes_rx, tx_overflow_bytes, ticks_skipped, stalls;
static long long longest_stall_ns, unplugged_at_ns = -1, first_armed_ns = -1;
static int rx_dropping; /* dropping the rest of the current received frame */
static int rx_at_frame_start = 1;

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint32_t us_at(long long t_ns)
{
    return (uint32_t)(cfg.clock_start_us + (uint64_t)((t_ns - boot_ns) / 1000));
}

uint32_t hal_clock_us(void) { return us_at(now_ns_cached); }

void hal_led(int on) { (void)on; }

/* xorshift64*: seeded, so a run repeats */
static double rng_uniform(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (double)((x * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static long long clean_run(line *l)
{
    if (l->corrupt_rate <= 0.0) {
        return -1; /* never */
    }
    if (l->corrupt_rate >= 1.0) {
        return 0;
    }
    return (long long)(log(1.0 - rng_uniform(&l->rng)) / log(1.0 - l->corrupt_rate));
}

static void line_init(line *l, uint64_t seed_value)
{
    memset(l, 0, sizeof *l);
    l->byte_ns = 10.0 * 1e9 / (double)baud; /* 8N1: 10 bit times per byte */
    l->rng = seed_value ? seed_value : 0x9E3779B97F4A7C15ULL;
    l->clean_left = -2;
}

static uint8_t line_corrupt(line *l, uint8_t b)
{
    if (l->clean_left == -2) {
        l->clean_left = clean_run(l);
    }
    if (l->clean_left < 0) {
        return b;
    }
    if (l->clean_left > 0) {
        l->clean_left--;
        return b;
    }
    l->corrupted_bytes++;
    l->clean_left = clean_run(l);
    return (uint8_t)(b ^ (1u + (unsigned)(rng_uniform(&l->rng) * 255.0)));
}

static int line_drop(line *l)
{
    if (l->drop_rate > 0.0 && rng_uniform(&l->rng) < l->drop_rate) {
        l->dropped_frames++;
        return 1;
    }
    return 0;
}

/* When the last of n bytes handed to the line at start_ns is through. */
static long long line_finish(line *l, long long start_ns, size_t n)
{
    if (l->free_at_ns < (double)start_ns) {
        l->free_at_ns = (double)start_ns;
    }
    l->free_at_ns += (double)n * l->byte_ns;
    return (long long)ceil(l->free_at_ns);
}

int hal_uart_write(const uint8_t *bytes, size_t n)
{
    tx_frame *f;
    size_t i;
    if (master_fd < 0) {
        return 1; /* unplugged: the bytes go nowhere, as on a cut cable */
    }
    if (txq_head - txq_tail >= TXQ_FRAMES) {
        return 0;
    }
    f = &txq[txq_head % TXQ_FRAMES];
    f->due_ns = line_finish(&tx_line, now_ns_cached, n) + added_latency_ns;
    if (line_drop(&tx_line)) {
        return 1; /* lost on the wire, after the UART took it */
    }
    f->len = (uint8_t)n;
    for (i = 0; i < n; i++) {
        f->bytes[i] = line_corrupt(&tx_line, bytes[i]);
    }
    txq_head++;
    return 1;
}

static void write_due(long long now)
{
    while (txq_tail != txq_head && txq[txq_tail % TXQ_FRAMES].due_ns <= now) {
        tx_frame *f = &txq[txq_tail % TXQ_FRAMES];
        ssize_t w = write(master_fd, f->bytes, f->len);
        if (w < 0) {
            w = 0; /* nobody reads the port: the bytes are lost, as on a UART */
        }
        bytes_tx += (unsigned long)w;
        tx_overflow_bytes += f->len - (unsigned long)w;
        txq_tail++;
    }
}

static void read_port(void)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = read(master_fd, buf, sizeof buf);
        long long t;
        ssize_t i;
        if (n <= 0) {
            return;
        }
        t = mono_ns(); /* stamped now: this process may have stalled since the loop began */
        bytes_rx += (unsigned long)n;
        for (i = 0; i < n; i++) {
            uint8_t b = line_corrupt(&rx_line, buf[i]);
            long long due = line_finish(&rx_line, t, 1) + added_latency_ns;
            if (rx_at_frame_start) {
                rx_dropping = line_drop(&rx_line);
                rx_at_frame_start = 0;
            }
            if (b == 0) {
                rx_at_frame_start = 1;
            }
            if (rx_dropping) {
                if (b == 0) {
                    rx_dropping = 0;
                }
                continue;
            }
            if (rxq.head - rxq.tail >= RXQ_BYTES) {
                continue; /* the host floods: a UART would overrun too */
            }
            rxq.due_ns[rxq.head % RXQ_BYTES] = due;
            rxq.bytes[rxq.head % RXQ_BYTES] = b;
            rxq.head++;
        }
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void close_port(void)
{
    if (master_fd >= 0) {
        close(master_fd);
    }
    if (slave_fd >= 0) {
        close(slave_fd);
    }
    master_fd = slave_fd = -1;
    if (link_path) {
        unlink(link_path);
    }
}

static int open_port(void)
{
    struct termios tio;
    if (openpty(&master_fd, &slave_fd, pty_path, NULL, NULL) != 0) {
        perror("hil-rig-host: openpty");
        return -1;
    }
    /* a serial line carries bytes: no echo, no line editing (the slave, as pyserial sets) */
    tcgetattr(slave_fd, &tio);
    cfmakeraw(&tio);
    tcsetattr(slave_fd, TCSANOW, &tio);
    fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
    if (link_path) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", link_path);
        unlink(tmp);
        if (symlink(pty_path, tmp) != 0 || rename(tmp, link_path) != 0) {
            perror("hil-rig-host: link");
            return -1;
        }
    }
    return 0;
}

static void write_report(const char *end_reason)
{
    char path[4096];
    FILE *f;
    const rig_counters *n = &the_rig.n;
    const hp_stats *s = &the_rig.dec.stats;
    if (!out_dir) {
        return;
    }
    snprintf(path, sizeof path, "%s/rig.json", out_dir);
    f = fopen(path, "w");
    if (!f) {
        perror("hil-rig-host: rig.json");
        return;
    }
    fprintf(f, "{\n \"process\": \"rig_firmware\",\n \"build\": \"host\",\n");
    fprintf(f, " \"end_reason\": \"%s\",\n \"path\": \"%s\",\n", end_reason, pty_path);
    fprintf(f, " \"link\": %s%s%s,\n", link_path ? "\"" : "", link_path ? link_path : "null",
            link_path ? "\"" : "");
    fprintf(f, " \"boot_ns\": %lld,\n \"first_armed_ns\": ", boot_ns);
    if (first_armed_ns >= 0) fprintf(f, "%lld", first_armed_ns); else fprintf(f, "null");
    fprintf(f, ",\n \"unplugged_at_ns\": ");
    if (unplugged_at_ns >= 0) fprintf(f, "%lld", unplugged_at_ns); else fprintf(f, "null");
    fprintf(f, ",\n \"settings\": {\"rate_hz\": %u, \"baud\": %ld, \"watchdog_ms\": %u, "
            "\"rig_id\": %lu, \"seed\": %llu, \"corrupt_byte_rate\": %.17g, "
            "\"drop_frame_rate\": %.17g, \"added_latency_ms\": %.17g, \"unplug_after_s\": ",
            (unsigned)cfg.rig.state_rate_hz, baud, (unsigned)cfg.rig.watchdog_ms,
            (unsigned long)cfg.rig.rig_id, seed, tx_line.corrupt_rate, tx_line.drop_rate,
            added_latency_ms);
    if (unplug_after_s >= 0) fprintf(f, "%.17g", unplug_after_s); else fprintf(f, "null");
    fprintf(f, "},\n \"ticks\": %u,\n \"ticks_skipped\": %lu,\n \"stalls\": %lu,\n"
            " \"longest_stall_ms\": %.6f,\n", (unsigned)n->ticks, ticks_skipped, stalls,
            (double)longest_stall_ns / 1e6);
    fprintf(f, " \"line\": {\"bytes_tx\": %lu, \"bytes_rx\": %lu, \"tx_overflow_bytes\": %lu, "
            "\"tx\": {\"corrupted_bytes\": %lu, \"dropped_frames\": %lu}, "
            "\"rx\": {\"corrupted_bytes\": %lu, \"dropped_frames\": %lu}},\n",
            bytes_tx, bytes_rx, tx_overflow_bytes, tx_line.corrupted_bytes,
            tx_line.dropped_frames, rx_line.corrupted_bytes, rx_line.dropped_frames);
    fprintf(f, " \"firmware\": {\n  \"version\": \"%u.%u.%u\",\n  \"capabilities\": "
            "{\"rig_id\": %lu, \"state_rate_hz\": %u, \"watchdog_ms\": %u, "
            "\"input_limits\": [[%.9g, %.9g]]},\n  \"armed_at_exit\": %s,\n"
            "  \"latched_code\": %u,\n",
            RIG_FIRMWARE_MAJOR, RIG_FIRMWARE_MINOR, RIG_FIRMWARE_PATCH,
            (unsigned long)cfg.rig.rig_id, (unsigned)cfg.rig.state_rate_hz,
            (unsigned)cfg.rig.watchdog_ms, (double)cfg.rig.input_low[0],
            (double)cfg.rig.input_high[0],
            the_rig.armed ? "true" : "false", (unsigned)the_rig.latched_code);
    fprintf(f, "  \"counters\": {\"hellos\": %u, \"clears\": %u, \"estops\": %u, "
            "\"controls_applied\": %u, \"controls_ignored_safe\": %u, \"controls_stale\": %u, "
            "\"watchdog_trips\": %u, \"limit_trips\": %u, \"encoder_faults\": %u, "
            "\"states_tx\": %u, \"heartbeats_tx\": %u, \"faults_tx\": %u, \"frames_tx\": %u, "
            "\"tx_dropped\": %u, \"unexpected_frames\": %u, \"controls_wrong_count\": %u, "
            "\"other_version_hellos\": %u},\n",
            (unsigned)n->hellos, (unsigned)n->clears, (unsigned)n->estops,
            (unsigned)n->controls_applied, (unsigned)n->controls_ignored_safe,
            (unsigned)n->controls_stale, (unsigned)n->watchdog_trips, (unsigned)n->limit_trips,
            (unsigned)n->encoder_faults, (unsigned)n->states_tx, (unsigned)n->heartbeats_tx,
            (unsigned)n->faults_tx, (unsigned)n->frames_tx, (unsigned)n->tx_dropped,
            (unsigned)n->unexpected_frames, (unsigned)n->controls_wrong_count,
            (unsigned)n->other_version_hellos);
    fprintf(f, "  \"decoder\": {\"frames_ok\": %u, \"crc_errors\": %u, \"sequence_gaps\": %u, "
            "\"duplicates\": %u, \"bytes_received\": %u, \"rejected\": %u},\n",
            (unsigned)s->frames_ok, (unsigned)s->crc_errors, (unsigned)s->sequence_gaps,
            (unsigned)s->duplicates, (unsigned)s->bytes_received,
            (unsigned)(s->too_long_errors + s->cobs_errors + s->length_errors + s->crc_errors +
                       s->version_errors + s->type_errors + s->value_errors));
    fprintf(f, "  \"final_state\": [%.17g, %.17g, %.17g, %.17g, %.17g, %.17g],\n"
            "  \"sim_steps\": %u\n }\n}\n", (double)sim.state[0], (double)sim.state[1],
            (double)sim.state[2], (double)sim.state[3], (double)sim.state[4],
            (double)sim.state[5], (unsigned)sim.steps);
    fclose(f);
}

static int set_port_key(const char *key, const char *value)
{
    char *end;
    if (strcmp(key, "link") == 0) { link_path = value; return 0; }
    if (strcmp(key, "out") == 0) { out_dir = value; return 0; }
    if (strcmp(key, "baud") == 0) {
        baud = strtol(value, &end, 10);
        return (*end || baud <= 0) ? -2 : 0;
    }
    if (strcmp(key, "seed") == 0) {
        seed = strtoull(value, &end, 0);
        return *end ? -2 : 0;
    }
    if (strcmp(key, "sched_fifo") == 0) { sched_fifo = atoi(value); return 0; }
    if (strcmp(key, "sched_priority") == 0) { sched_priority = atoi(value); return 0; }
    if (strcmp(key, "corrupt_byte_rate") == 0 || strcmp(key, "drop_frame_rate") == 0 ||
        strcmp(key, "added_latency_ms") == 0 || strcmp(key, "unplug_after_s") == 0) {
        double v = strtod(value, &end);
        if (*end || !isfinite(v) || v < 0) return -2;
        if (key[0] == 'c') { tx_line.corrupt_rate = rx_line.corrupt_rate = v; }
        else if (key[0] == 'd') { tx_line.drop_rate = rx_line.drop_rate = v; }
        else if (key[0] == 'a') { added_latency_ms = v; }
        else { unplug_after_s = v; }
        if (key[0] != 'a' && key[0] != 'u' && v > 1.0) return -2;
        return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    int i;
    double corrupt = 0, drop = 0;
    long long next_tick_ns, period_ns, unplug_at = -1, wake;
    uint64_t master_seed;
    pid_t parent = getppid();
    const char *reason = "stopped";
    struct sigaction sa;

    sim_config_default(&cfg);
    for (i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        int res;
        if (!eq) {
            fprintf(stderr, "hil-rig-host: expected key=value, got %s\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        res = set_port_key(argv[i], eq + 1);
        if (res == -1) {
            res = sim_config_set(&cfg, argv[i], eq + 1);
        }
        if (res != 0) {
            fprintf(stderr, "hil-rig-host: %s %s=%s\n",
                    res == -1 ? "unknown key" : "bad value for", argv[i], eq + 1);
            return 2;
        }
        if (strcmp(argv[i], "corrupt_byte_rate") == 0) corrupt = tx_line.corrupt_rate;
        if (strcmp(argv[i], "drop_frame_rate") == 0) drop = tx_line.drop_rate;
    }
    if (sim_init(&cfg) != 0) {
        fprintf(stderr, "hil-rig-host: invalid pendulum parameters\n");
        return 2;
    }
    master_seed = splitmix64(seed);
    line_init(&tx_line, master_seed);
    line_init(&rx_line, splitmix64(master_seed));
    tx_line.corrupt_rate = rx_line.corrupt_rate = corrupt;
    tx_line.drop_rate = rx_line.drop_rate = drop;
    added_latency_ns = (long long)llround(added_latency_ms * 1e6);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (sched_fifo) {
        struct sched_param sp;
        sp.sched_priority = sched_priority;
        if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
            fprintf(stderr, "hil-rig-host: SCHED_FIFO refused (%s); running without it\n",
                    strerror(errno));
        }
    }
    if (open_port() != 0) {
        close_port();
        return 1;
    }
    printf("rig firmware (host build) on %s%s%s%s\n", pty_path, link_path ? " (link " : "",
           link_path ? link_path : "", link_path ? ")" : "");
    fflush(stdout);

    boot_ns = now_ns_cached = mono_ns();
    period_ns = 1000000000LL / cfg.rig.state_rate_hz;
    if (rig_init(&the_rig, &cfg.rig, hal_clock_us()) != 0) {
        fprintf(stderr, "hil-rig-host: unusable rig configuration\n");
        close_port();
        return 2;
    }
    next_tick_ns = -1; /* the timer starts with the first HELLO: ticks are aligned to it */
    wake = boot_ns;
    while (!stop_flag) {
        long long now = mono_ns(), timeout, t;
        struct timespec ts;
        struct pollfd pfd;
        if (now - wake > STALL_NS) {
            long long stall = now - wake;
            stalls++;
            if (stall > longest_stall_ns) longest_stall_ns = stall;
            rig_stalled(&the_rig, (uint32_t)(stall / 1000));
        }
        if (getppid() != parent) {
            reason = "parent gone";
            break;
        }
        if (first_armed_ns < 0 && the_rig.armed) {
            first_armed_ns = now;
        }
        if (unplug_at < 0 && first_armed_ns >= 0 && unplug_after_s >= 0) {
            unplug_at = first_armed_ns + (long long)llround(unplug_after_s * 1e9);
        }
        if (unplug_at >= 0 && now >= unplug_at) {
            unplugged_at_ns = now;
            close_port();
            fprintf(stderr, "hil-rig-host: unplugged %s\n", pty_path);
            reason = "unplugged";
            break;
        }
        now_ns_cached = now;
        read_port();
        while (rxq.tail != rxq.head && rxq.due_ns[rxq.tail % RXQ_BYTES] <= now) {
            now_ns_cached = rxq.due_ns[rxq.tail % RXQ_BYTES];
            rig_rx_byte(&the_rig, rxq.bytes[rxq.tail % RXQ_BYTES], us_at(now_ns_cached));
            rxq.tail++;
        }
        now_ns_cached = now;
        if (next_tick_ns < 0 && the_rig.streaming) {
            next_tick_ns = now;
        }
        if (next_tick_ns >= 0 && now >= next_tick_ns) {
            now_ns_cached = next_tick_ns;
            rig_tick(&the_rig, us_at(next_tick_ns));
            next_tick_ns += period_ns;
            if (now >= next_tick_ns) { /* behind by a whole period: skip, never burst */
                long long behind = (now - next_tick_ns) / period_ns + 1;
                ticks_skipped += (unsigned long)behind;
                next_tick_ns += behind * period_ns;
            }
            now_ns_cached = now;
        }
        rig_poll(&the_rig, us_at(now));
        write_due(now);
        /* sleep until the next thing to do */
        wake = now + MAX_IDLE_NS;
        if (next_tick_ns >= 0 && next_tick_ns < wake) wake = next_tick_ns;
        if (txq_tail != txq_head && txq[txq_tail % TXQ_FRAMES].due_ns < wake)
            wake = txq[txq_tail % TXQ_FRAMES].due_ns;
        if (rxq.tail != rxq.head && rxq.due_ns[rxq.tail % RXQ_BYTES] < wake)
            wake = rxq.due_ns[rxq.tail % RXQ_BYTES];
        if (the_rig.armed) {
            t = now + (long long)(int32_t)(the_rig.watchdog_deadline_us - us_at(now)) * 1000;
            if (t < wake) wake = t;
        }
        t = now + (long long)(int32_t)(the_rig.last_tx_us + RIG_LIVENESS_US - us_at(now)) * 1000;
        if (t < wake) wake = t;
        if (unplug_at >= 0 && unplug_at < wake) wake = unplug_at;
        if (wake < now) wake = now;
        timeout = wake - mono_ns();
        if (timeout < 0) timeout = 0;
        ts.tv_sec = timeout / 1000000000LL;
        ts.tv_nsec = timeout % 1000000000LL;
        pfd.fd = master_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (timeout > 0 || rxq.tail == rxq.head) {
            ppoll(&pfd, 1, &ts, NULL);
        }
    }
    close_port();
    write_report(reason);
    return 0;
}
