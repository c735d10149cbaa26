/* libhil's shared-memory data plane (run.transport shm; docs/protocol.md, section 9): states
 * read from the segment's state slot, controls written to its control slot, each a seqlock
 * with a futex doorbell; ZeroMQ keeps the control plane (hello, welcome, bye, gains, errors).
 * Memory ordering with GCC's __atomic builtins (the C11 model), so it holds on any CPU; the
 * futex system call is Linux's. */
#define _GNU_SOURCE
#include "hil_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define SEGMENT_BYTES 512
#define MAGIC 0x314D48534C4948ULL /* "HILSHM1" */
#define VERSION 2
#define STATE_AT 64
#define CONTROL_AT 384
#define SESSION_AT 24
#define MAX_TAKE_TRIES 1000
#define MAX_SLEEP_NS 100000 /* the socket is looked at least this often while waiting */

static uint64_t *word(const hil_shm *s, size_t at) { return (uint64_t *)(s->base + at); }
static uint32_t *word32(const hil_shm *s, size_t at) { return (uint32_t *)(s->base + at); }

static uint64_t load(const hil_shm *s, size_t at)
{
    return __atomic_load_n(word(s, at), __ATOMIC_RELAXED);
}

static void store(const hil_shm *s, size_t at, uint64_t v)
{
    __atomic_store_n(word(s, at), v, __ATOMIC_RELAXED);
}

static hil_status check_segment(hil_client *c, hil_shm *s, const char *name)
{
    uint32_t version = *word32(s, 8), n_states = *word32(s, 12), n_inputs = *word32(s, 40);
    if (load(s, 0) != MAGIC)
        return hil_fail(c, HIL_ERR_REFUSED, "/dev/shm/%s is not a hil-runtime segment "
                        "(shm_unavailable)", name);
    if (version != VERSION)
        return hil_fail(c, HIL_ERR_REFUSED, "/dev/shm/%s has segment version %u, libhil %d: "
                        "use the same protocol version (shm_unavailable)", name, version, VERSION);
    if ((int)n_states != c->desc.n_states || (int)n_inputs != c->desc.n_inputs)
        return hil_fail(c, HIL_ERR_REFUSED, "/dev/shm/%s holds %u states and %u inputs, the "
                        "welcome %d and %d (shm_unavailable)", name, n_states, n_inputs,
                        c->desc.n_states, c->desc.n_inputs);
    return HIL_OK;
}

/* Open the segment the welcome's `shm` map names, under its session. */
hil_status hil_shm_open(hil_client *c, const msgpack_object *info)
{
    hil_shm *s = &c->shm;
    const msgpack_object *session = hil_map_get(info, "session"), *spin;
    char name[128], path[140];
    struct stat st;
    int fd;
    hil_str(hil_map_get(info, "segment"), name, sizeof name);
    snprintf(path, sizeof path, "/%s", name);
    if (name[0] == '\0' || session == NULL || session->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return hil_fail(c, HIL_ERR_REFUSED, "the welcome's shm map lacks segment or session "
                        "(shm_unavailable)");
    if ((fd = shm_open(path, O_RDWR, 0)) < 0)
        return hil_fail(c, HIL_ERR_REFUSED, "the plant serves run.transport shm but its segment "
                        "/dev/shm/%s cannot be opened here (%s): shared memory works only with "
                        "plant and controller on one host; use run.transport zmq across "
                        "machines (shm_unavailable)", name, strerror(errno));
    s->base = fstat(fd, &st) == 0 && st.st_size >= SEGMENT_BYTES
                  ? mmap(NULL, SEGMENT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    close(fd);
    if (s->base == MAP_FAILED) {
        s->base = NULL;
        return hil_fail(c, HIL_ERR_REFUSED, "/dev/shm/%s: not a segment of %d bytes that can "
                        "be mapped (shm_unavailable)", name, SEGMENT_BYTES);
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    s->session = (int64_t)session->via.u64;
    spin = hil_map_get(info, "spin_us");
    s->spin_ns = spin != NULL && (spin->type == MSGPACK_OBJECT_FLOAT64
                                  || spin->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                     ? (int64_t)(hil_num(spin) * 1e3) : 0;
    return check_segment(c, s, name);
}

void hil_shm_close(hil_shm *s)
{
    if (s->base != NULL) munmap(s->base, SEGMENT_BYTES);
    s->base = NULL;
}

/* The newest state not yet taken (seqlock read): 1 with its fields, 0 when none is new (or
 * the writer was caught mid-write MAX_TAKE_TRIES times: a killed writer never holds us). */
int hil_shm_take(hil_client *c, int64_t *seq, int64_t *t_ns, int64_t *flags, double *x)
{
    hil_shm *s = &c->shm;
    int n = c->desc.n_states;
    for (int tries = 0; tries < MAX_TAKE_TRIES; tries++) {
        uint64_t ctr = __atomic_load_n(word(s, STATE_AT), __ATOMIC_ACQUIRE), bits;
        if (ctr == s->seen) return 0;
        if (ctr & 1) {
            s->retries++;
            continue;
        }
        *seq = (int64_t)load(s, STATE_AT + 16);
        *t_ns = (int64_t)load(s, STATE_AT + 24);
        *flags = (int64_t)load(s, STATE_AT + 32);
        for (int i = 0; i < n; i++) {
            bits = load(s, STATE_AT + 40 + 8 * (size_t)i);
            memcpy(&x[i], &bits, sizeof bits);
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (load(s, STATE_AT) != ctr) {
            s->retries++;
            continue;
        }
        if (s->seen != 0) s->overwritten += (int64_t)((ctr - s->seen) / 2 - 1);
        s->seen = ctr;
        return 1;
    }
    return 0;
}

static void ring(hil_shm *s, size_t slot_at)
{
    __atomic_fetch_add(word32(s, slot_at + 8), 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(word32(s, slot_at + 12), __ATOMIC_SEQ_CST) != 0) {
        s->wakes++;
        syscall(SYS_futex, word32(s, slot_at + 8), FUTEX_WAKE, 1, NULL, NULL, 0);
    }
}

/* Write a control under our session (seqlock write), then ring the plant's bell; refused,
 * writing nothing, when the plant gave the slot to another controller. */
hil_status hil_shm_write_control(hil_client *c, int64_t seq, int64_t state_seq,
                                 const double *u, int64_t rx_ns, int64_t send_ns,
                                 int64_t compute_ns)
{
    hil_shm *s = &c->shm;
    const int64_t fields[6] = {s->session, seq, state_seq, rx_ns, send_ns, compute_ns};
    uint64_t ctr, bits;
    if ((int64_t)__atomic_load_n(word(s, SESSION_AT), __ATOMIC_ACQUIRE) != s->session)
        return hil_fail(c, HIL_ERR_REFUSED, "replaced by another controller: the plant gave "
                        "the control slot to another controller after this one let its "
                        "watchdog expire");
    ctr = (load(s, CONTROL_AT) + 1) | 1;
    store(s, CONTROL_AT, ctr);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (int i = 0; i < 6; i++) store(s, CONTROL_AT + 16 + 8 * (size_t)i, (uint64_t)fields[i]);
    for (int i = 0; i < c->desc.n_inputs; i++) {
        memcpy(&bits, &u[i], sizeof bits);
        store(s, CONTROL_AT + 64 + 8 * (size_t)i, bits);
    }
    __atomic_store_n(word(s, CONTROL_AT), ctr + 1, __ATOMIC_RELEASE);
    ring(s, CONTROL_AT);
    return HIL_OK;
}

static int socket_readable(hil_client *c)
{
    int events = 0;
    size_t size = sizeof events;
    return zmq_getsockopt(c->sock, ZMQ_EVENTS, &events, &size) == 0 && (events & ZMQ_POLLIN);
}

/* Sleep on the state slot's bell for at most `timeout_ns` (and MAX_SLEEP_NS): the flag is
 * raised first and the counter looked at again, so a state written meanwhile is not slept
 * through. */
static void sleep_on_bell(hil_shm *s, int64_t timeout_ns)
{
    uint32_t seen = __atomic_load_n(word32(s, STATE_AT + 8), __ATOMIC_SEQ_CST);
    struct timespec ts = {0, (long)(timeout_ns < MAX_SLEEP_NS ? timeout_ns : MAX_SLEEP_NS)};
    __atomic_exchange_n(word32(s, STATE_AT + 12), 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(word(s, STATE_AT), __ATOMIC_SEQ_CST) == s->seen) {
        s->sleeps++;
        syscall(SYS_futex, word32(s, STATE_AT + 8), FUTEX_WAIT, seen, &ts, NULL, 0);
    }
    __atomic_store_n(word32(s, STATE_AT + 12), 0, __ATOMIC_SEQ_CST);
}

/* Until a new state is in the slot, a message waits on the socket, or `until_ns`: busy-poll
 * the first `spin_first_ns`, sleep on the bell in between (the socket looked at every
 * MAX_SLEEP_NS), as hil-controller's shared-memory waits. */
void hil_shm_wait(hil_client *c, int64_t until_ns, int64_t spin_first_ns)
{
    hil_shm *s = &c->shm;
    int64_t spin_until = hil_now_ns() + spin_first_ns;
    for (;;) {
        int64_t now;
        if (load(s, STATE_AT) != s->seen || socket_readable(c) || hil_stop_requested()) return;
        now = hil_now_ns();
        if (now >= until_ns) return;
        if (now >= spin_until) sleep_on_bell(s, until_ns - now);
    }
}
