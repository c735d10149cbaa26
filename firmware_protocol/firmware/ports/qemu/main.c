/*
 * ports/qemu/main.c - the rig core on QEMU's mps2-an386: a Cortex-M4F with a
 * single-precision FPU, CMSDK APB UART0 (0x40004000, RX IRQ 0, TX IRQ 1) on QEMU's first
 * serial port (a pseudo-terminal: -serial pty), CMSDK timer 0 (0x40000000, IRQ 8) as the
 * state-rate tick and timer 1 (0x40001000, IRQ 9) as the free-running microsecond clock,
 * both at the 25 MHz system clock. The pendulum is simulated on the MCU behind the HAL
 * (sim/, in float: the M4F's FPU is single-precision).
 *
 * Why mps2-an386 and not lm3s6965evb: the M4F has the FPU a real rig MCU has (STM32F4,
 * the board port), so the float code paths run as on the board and the simulated pendulum
 * runs in hardware float; the lm3s6965's Cortex-M3 would run all of it in soft-float,
 * which a real rig would never do. Its CMSDK UART is a plain one-byte register, so the
 * ring buffers and interrupts do all the work, as on a small MCU.
 *
 * Settings come from QEMU's semihosting command line (SYS_GET_CMDLINE):
 *   qemu-system-arm -M mps2-an386 -kernel hil-rig-qemu.elf -serial pty -nographic
 *       -semihosting-config enable=on,target=native,arg=hil-rig-qemu,arg=rate_hz=500,...
 * with the keys of sim/sim.c plus baud (UART0's BAUDDIV; QEMU does not pace the bytes).
 *
 * Contexts: the UART interrupts only move bytes between the UART and two rings; the tick
 * interrupt only counts the tick and timestamps it. The core runs in the main loop
 * (hal.h), which sleeps in WFI when there is nothing to do.
 *
 * Stalls. Without -icount, QEMU's virtual clock (the timers, so hal_clock_us) is the host's
 * monotonic clock: it keeps running while the host deschedules QEMU's vCPU thread, and the
 * firmware would take the time it did not run for the host's silence. A real MCU's main
 * loop reads the clock at least once per tick (the tick interrupt ends each WFI); here two
 * consecutive reads of the main loop (port_now) further apart than the tick period plus
 * STALL_US are a stall of the emulator: it is counted and rig_stalled() moves the
 * watchdog's deadline by its length (port key stall_comp=0 turns that off, for
 * measurements) before the core is given the new time, so a stall anywhere in the loop,
 * even between a byte and the next, is never seen by the core as silence. A host that stops sending still trips
 * the watchdog on time: its silence is time the MCU did run. The port reports through
 * semihosting (QEMU's stderr): "hil-rig-qemu: ready" once its UART listens, a line
 * "hil-rig-qemu: stalls N longest L us total T us" at
 * most every 200 ms when N changed, and on a watchdog trip one line with the last CONTROL
 * applied, the last byte received and the longest loop gap before it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hal.h"
#include "rig.h"
#include "ring.h"
#include "sim.h"

#define SYSCLK_HZ 25000000u

#define REG(addr) (*(volatile uint32_t *)(addr))
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00)
#define UART_STATE REG(UART0 + 0x04)
#define UART_CTRL REG(UART0 + 0x08)
#define UART_INTSTATUS REG(UART0 + 0x0C)
#define UART_BAUDDIV REG(UART0 + 0x10)
#define UART_STATE_TXFULL 1u
#define UART_STATE_RXFULL 2u
#define UART_CTRL_TX_EN 1u
#define UART_CTRL_RX_EN 2u
#define UART_CTRL_TX_INTEN 4u
#define UART_CTRL_RX_INTEN 8u
#define UART_INT_TX 1u
#define UART_INT_RX 2u

#define TIMER0 0x40000000u
#define TIMER1 0x40001000u
#define TIMER_CTRL(t) REG((t) + 0x00)
#define TIMER_VALUE(t) REG((t) + 0x04)
#define TIMER_RELOAD(t) REG((t) + 0x08)
#define TIMER_INT(t) REG((t) + 0x0C)
#define TIMER_EN 1u
#define TIMER_IRQEN 8u

#define NVIC_ISER0 REG(0xE000E100u)
#define NVIC_ISPR0 REG(0xE000E200u)
#define SCB_CPACR REG(0xE000ED88u)

#define IRQ_UART0_RX 0
#define IRQ_UART0_TX 1
#define IRQ_TIMER0 8
#define IRQ_TIMER1 9

static ring rx_ring, tx_ring;
static volatile uint32_t tick_count, tick_time_us, clock_wraps, rx_overruns;
static volatile uint8_t tx_busy;
static rig the_rig;
static sim_config cfg;

#define STALL_US 5000u /* a main-loop pass this much later than the tick period allows */
static uint32_t stalls, longest_stall_us, total_stall_us;
static uint32_t stall_comp = 1, period_us = 2000u, last_read_us, gap_max, gap_end;

static inline uint32_t irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void irq_restore(uint32_t primask)
{
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
}

/* ------------------------------------------------------------------ clock (timer 1) */
uint32_t hal_clock_us(void)
{
    uint32_t s = irq_save();
    uint32_t hi = clock_wraps;
    uint32_t count = 0xFFFFFFFFu - TIMER_VALUE(TIMER1);
    if (TIMER_INT(TIMER1) & 1u) { /* wrapped, interrupt not yet taken */
        count = 0xFFFFFFFFu - TIMER_VALUE(TIMER1);
        hi++;
    }
    irq_restore(s);
    return (uint32_t)((((uint64_t)hi << 32) | count) / (SYSCLK_HZ / 1000000u)) +
           cfg.clock_start_us;
}

void TIMER1_IRQHandler(void)
{
    TIMER_INT(TIMER1) = 1u;
    clock_wraps++;
}

/* ------------------------------------------------------------------ tick (timer 0) */
void TIMER0_IRQHandler(void)
{
    TIMER_INT(TIMER0) = 1u;
    tick_time_us = hal_clock_us();
    tick_count++;
}

/* ------------------------------------------------------------------ UART0 */
void UART0RX_IRQHandler(void)
{
    UART_INTSTATUS = UART_INT_RX;
    while (UART_STATE & UART_STATE_RXFULL) {
        if (!ring_put(&rx_ring, (uint8_t)UART_DATA)) {
            rx_overruns++;
        }
    }
}

static void tx_next(void)
{
    uint8_t b;
    if (!(UART_STATE & UART_STATE_TXFULL) && ring_get(&tx_ring, &b)) {
        tx_busy = 1;
        UART_DATA = b;
    } else if (!(UART_STATE & UART_STATE_TXFULL)) {
        tx_busy = 0;
    }
}

void UART0TX_IRQHandler(void)
{
    UART_INTSTATUS = UART_INT_TX;
    tx_next();
}

int hal_uart_write(const uint8_t *bytes, size_t n)
{
    uint32_t s;
    if (!ring_put_all(&tx_ring, bytes, n)) {
        return 0;
    }
    s = irq_save();
    if (!tx_busy) {
        tx_next(); /* start the transmitter; the TX interrupt sends the rest */
    }
    irq_restore(s);
    return 1;
}

void hal_led(int on)
{
    (void)on; /* the an386's user LEDs are in the FPGA's SCC; nothing to see in QEMU */
}

/* ------------------------------------------------------------------ semihosting */
static int semihost_cmdline(char *buf, uint32_t len)
{
    volatile uint32_t block[2];
    register uint32_t r0 __asm("r0") = 0x15; /* SYS_GET_CMDLINE */
    register volatile uint32_t *r1 __asm("r1") = block;
    block[0] = (uint32_t)(uintptr_t)buf;
    block[1] = len;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int)r0;
}

static void semihost_write0(const char *s)
{
    register uint32_t r0 __asm("r0") = 0x04; /* SYS_WRITE0: QEMU's stderr */
    register const char *r1 __asm("r1") = s;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

/* "text" + decimal value: a tiny formatter (no printf: nothing that might allocate) */
static char *put_str(char *p, char *end, const char *t)
{
    while (*t && p < end) {
        *p++ = *t++;
    }
    return p;
}

static char *put_u32(char *p, char *end, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n && p < end) {
        *p++ = digits[--n];
    }
    return p;
}

static void report_stalls(void)
{
    char line[96], *p = line, *end = line + sizeof line - 2;
    p = put_str(p, end, "hil-rig-qemu: stalls ");
    p = put_u32(p, end, stalls);
    p = put_str(p, end, " longest ");
    p = put_u32(p, end, longest_stall_us);
    p = put_str(p, end, " us total ");
    p = put_u32(p, end, total_stall_us);
    p = put_str(p, end, " us\n");
    *p = '\0';
    semihost_write0(line);
}

static void report_trip(uint32_t now, uint32_t control_us, uint32_t byte_us, uint32_t gap_us,
                        uint32_t gap_end_us)
{
    char line[200], *p = line, *end = line + sizeof line - 2;
    p = put_str(p, end, "hil-rig-qemu: watchdog trip at ");
    p = put_u32(p, end, now);
    p = put_str(p, end, " us: last CONTROL applied ");
    p = put_u32(p, end, now - control_us);
    p = put_str(p, end, " us before, last byte ");
    p = put_u32(p, end, now - byte_us);
    p = put_str(p, end, " us before, longest loop gap ");
    p = put_u32(p, end, gap_us);
    p = put_str(p, end, " us ending ");
    p = put_u32(p, end, now - gap_end_us);
    p = put_str(p, end, " us before\n");
    *p = '\0';
    semihost_write0(line);
}

/*
 * The clock as the main loop gives it to the core: a jump since the last read longer than
 * a tick period (the longest the loop can sleep) plus STALL_US is QEMU not running.
 */
static uint32_t port_now(void)
{
    uint32_t now = hal_clock_us(), gap = now - last_read_us;
    last_read_us = now;
    if (gap > period_us + STALL_US) {
        uint32_t stall = gap - period_us; /* at least this long; the loop may have slept */
        stalls++;
        total_stall_us += stall;
        if (stall > longest_stall_us) {
            longest_stall_us = stall;
        }
        if (stall_comp) {
            rig_stalled(&the_rig, stall);
        }
    }
    if (gap >= gap_max || (uint32_t)(now - gap_end) > 1000000u) {
        gap_max = gap; /* the longest gap of about the last second, for a trip report */
        gap_end = now;
    }
    return now;
}

/* Pull " key=<unsigned>" out of the command line (a port key, not a firmware one). */
static int take_key(char *cmdline, const char *key, uint32_t *value)
{
    char *k = strstr(cmdline, key), *end;
    if (k == NULL) {
        return 0;
    }
    *value = (uint32_t)strtoul(k + strlen(key), &end, 10);
    memset(k, ' ', (size_t)(end - k));
    return 1;
}

static void nvic_enable(int irq)
{
    NVIC_ISER0 = 1u << irq;
}

int main(void)
{
    static char cmdline[1024];
    uint32_t seen = 0, baud = 460800, now, tick_us;
    uint32_t trips = 0, applied = 0, control_us = 0, byte_us = 0, reported = 0, report_at;
    int bad;
    sim_config_default(&cfg);
    if (semihost_cmdline(cmdline, sizeof cmdline) == 0) {
        /* the port's own keys; pulled out before the firmware keys */
        (void)take_key(cmdline, " baud=", &baud);
        (void)take_key(cmdline, " stall_comp=", &stall_comp);
        bad = sim_config_parse_line(&cfg, cmdline);
        if (bad) {
            semihost_write0("hil-rig-qemu: bad setting on the command line; defaults kept\n");
            sim_config_default(&cfg);
        }
    }
    if (sim_init(&cfg) != 0) {
        semihost_write0("hil-rig-qemu: invalid pendulum parameters\n");
        for (;;) {
            __asm volatile("wfi");
        }
    }
    /* UART0 at the configured baud (QEMU takes the divisor but does not pace the line) */
    UART_BAUDDIV = baud ? SYSCLK_HZ / baud : 16u;
    if (UART_BAUDDIV < 16u) {
        UART_BAUDDIV = 16u;
    }
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_TX_INTEN | UART_CTRL_RX_INTEN;
    /* the clock: timer 1 free-running from 0xFFFFFFFF */
    TIMER_RELOAD(TIMER1) = 0xFFFFFFFFu;
    TIMER_VALUE(TIMER1) = 0xFFFFFFFFu;
    TIMER_CTRL(TIMER1) = TIMER_EN | TIMER_IRQEN;
    nvic_enable(IRQ_UART0_RX);
    nvic_enable(IRQ_UART0_TX);
    nvic_enable(IRQ_TIMER1);
    (void)rig_init(&the_rig, &cfg.rig, hal_clock_us());
    /* the tick: timer 0 at state_rate_hz */
    TIMER_RELOAD(TIMER0) = SYSCLK_HZ / cfg.rig.state_rate_hz - 1u;
    TIMER_VALUE(TIMER0) = SYSCLK_HZ / cfg.rig.state_rate_hz - 1u;
    TIMER_CTRL(TIMER0) = TIMER_EN | TIMER_IRQEN;
    nvic_enable(IRQ_TIMER0);
    period_us = 1000000u / cfg.rig.state_rate_hz;
    last_read_us = report_at = hal_clock_us();
    /* QEMU creates the pty before the MCU boots, and bytes reaching the UART before it is
     * enabled are lost: a host must wait for this line (plant_server/firmware_rig.py links
     * the port only then), or its first HELLO may go nowhere. */
    semihost_write0("hil-rig-qemu: ready\n");
    for (;;) {
        uint8_t byte;
        uint32_t ticks, s;
        now = port_now();
        if (stalls != reported && (uint32_t)(now - report_at) >= 200000u) {
            reported = stalls;
            report_at = now;
            report_stalls();
        }
        while (ring_get(&rx_ring, &byte)) {
            byte_us = port_now();
            rig_rx_byte(&the_rig, byte, byte_us);
            if (the_rig.n.controls_applied != applied) {
                applied = the_rig.n.controls_applied;
                control_us = byte_us;
            }
        }
        s = irq_save();
        ticks = tick_count;
        tick_us = tick_time_us;
        irq_restore(s);
        now = port_now(); /* after the tick's stamp: a stall before it is seen here first */
        if (ticks != seen) {
            /* one STATE per pass; ticks missed while the loop was busy are skipped */
            seen = ticks;
            rig_tick(&the_rig, tick_us);
        }
        rig_poll(&the_rig, port_now());
        if (the_rig.n.watchdog_trips != trips) {
            trips = the_rig.n.watchdog_trips;
            report_trip(port_now(), control_us, byte_us, gap_max, gap_end);
        }
        s = irq_save();
        if (ring_used(&rx_ring) == 0 && tick_count == seen) {
            __asm volatile("wfi"); /* an interrupt pending wakes it even with PRIMASK set */
        }
        irq_restore(s);
    }
}
