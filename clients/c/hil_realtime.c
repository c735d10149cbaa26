/* libhil's real-time hygiene, as hil-controller's (hil/runtime/rt.py): SCHED_FIFO and locked
 * memory asked for before the ZeroMQ context exists (its I/O thread, which carries every
 * message, inherits the policy), the loop's CPU after; each refusal warned about once, and the
 * run goes on. Recorded for controller.json's `realtime` (granted / refused). */
#define _GNU_SOURCE
#include "hil_internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

static void refused(hil_client *c, int what, const char *name, int error)
{
    snprintf(c->rt_refused[what], sizeof c->rt_refused[what], "%s", strerror(error));
    fprintf(stderr, "libhil: %s refused (%s); running without it\n", name, strerror(error));
}

/* SCHED_FIFO at opt.sched_priority (0: not asked) and mlockall (opt.lock_memory). */
void hil_realtime_before_socket(hil_client *c)
{
    if (c->opt.sched_priority > 0) {
        struct sched_param param;
        memset(&param, 0, sizeof param);
        param.sched_priority = c->opt.sched_priority;
        if (sched_setscheduler(0, SCHED_FIFO, &param) == 0) c->rt_granted[HIL_RT_FIFO] = 1;
        else refused(c, HIL_RT_FIFO, "SCHED_FIFO", errno);
    }
    if (c->opt.lock_memory) {
#ifdef MCL_ONFAULT
        int locked = mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0
                     || mlockall(MCL_CURRENT | MCL_FUTURE) == 0;
#else
        int locked = mlockall(MCL_CURRENT | MCL_FUTURE) == 0;
#endif
        if (locked) c->rt_granted[HIL_RT_MEMORY] = 1;
        else refused(c, HIL_RT_MEMORY, "mlockall", errno);
    }
}

/* The loop's thread to opt.cpu (-1: not asked), after ZeroMQ's threads exist. */
void hil_realtime_after_socket(hil_client *c)
{
    cpu_set_t set;
    if (c->opt.cpu < 0) return;
    CPU_ZERO(&set);
    CPU_SET(c->opt.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) == 0) c->rt_granted[HIL_RT_CPU] = 1;
    else refused(c, HIL_RT_CPU, "cpu affinity", errno);
}

/* Back to normal priority for the report and the exit: they stall no other loop. */
void hil_realtime_leave(hil_client *c)
{
    struct sched_param param;
    if (!c->rt_granted[HIL_RT_FIFO]) return;
    memset(&param, 0, sizeof param);
    sched_setscheduler(0, SCHED_OTHER, &param);
}
