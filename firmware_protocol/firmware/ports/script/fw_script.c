/*
 * fw_script.c - the rig core on a scripted HAL, for the host tests
 * (tests/firmware_protocol/test_fw_core.py). Reads one command per line on stdin; each
 * command's output is zero or more lines, then "end". Every frame the core sends is printed
 * as "tx HEX" when it is sent.
 *
 *   init RATE WATCHDOG_MS MAX_COMMAND LAYOUT RIG_ID [INPUTS [VALUES]]
 *                         rig_init at the current time: INPUTS inputs (default 1), input i
 *                         kept within -(i + 1) MAX_COMMAND .. +MAX_COMMAND; VALUES the
 *                         STATE values of layout 0
 *   at US                 set the clock (hal_clock_us and the `now` of what follows)
 *   rx HEX                the UART received these bytes now
 *   tick                  a timer tick now
 *   poll                  a main-loop pass now
 *   values V...           what hal_read_state returns (decimal floats)
 *   sensor 0|1            hal_read_state fails (0) or works (1)
 *   limit MASK            hal_limit_switches (bit 0: -x end, bit 1: +x end)
 *   button 0|1            hal_estop_button
 *   txroom N              the UART ring has room for N more bytes (default: unlimited)
 *   status                "status FLAGS ARMED MOTOR_ENABLED COMMAND LATCHED_CODE LED
 *                         COMMANDS": COMMAND is input 0's, COMMANDS all of them, by commas
 *   counters              "counters NAME=VALUE ..."
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal.h"
#include "rig.h"

static uint32_t now;
static float values[8];
static int sensor_ok = 1;
static uint8_t limits;
static int button;
static long tx_room = -1;
static int motor_enabled;
static float motor_commands[HP_MAX_INPUTS];
static uint8_t motor_count;
static int led;
static rig r;
static int initialised;

uint32_t hal_clock_us(void) { return now; }

int hal_uart_write(const uint8_t *bytes, size_t n)
{
    size_t i;
    if (tx_room >= 0) {
        if ((size_t)tx_room < n) {
            printf("txdrop %zu\n", n);
            return 0;
        }
        tx_room -= (long)n;
    }
    printf("tx ");
    for (i = 0; i < n; i++) {
        printf("%02x", bytes[i]);
    }
    printf("\n");
    return 1;
}

int hal_read_state(uint32_t t_us, float *out, uint8_t count)
{
    (void)t_us;
    if (!sensor_ok) {
        return 0;
    }
    memcpy(out, values, count * sizeof *out);
    return 1;
}

void hal_motor_enable(int on, uint32_t now_us)
{
    (void)now_us;
    motor_enabled = on;
}

void hal_motor_set(const float *commands, uint8_t count, uint32_t now_us)
{
    (void)now_us;
    motor_count = count;
    memcpy(motor_commands, commands, count * sizeof *commands);
}

uint8_t hal_limit_switches(void) { return limits; }
int hal_estop_button(void) { return button; }
void hal_led(int on) { led = on; }

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void counters(void)
{
    const rig_counters *n = &r.n;
    const hp_stats *s = &r.dec.stats;
    printf("counters hellos=%u clears=%u estops=%u controls_applied=%u "
           "controls_ignored_safe=%u controls_stale=%u watchdog_trips=%u limit_trips=%u "
           "button_trips=%u encoder_faults=%u states_tx=%u heartbeats_tx=%u "
           "capabilities_tx=%u faults_tx=%u frames_tx=%u tx_dropped=%u unexpected_frames=%u "
           "other_version_hellos=%u ticks=%u frames_ok=%u crc_errors=%u duplicates=%u "
           "sequence_gaps=%u controls_wrong_count=%u version_errors=%u\n",
           (unsigned)n->hellos, (unsigned)n->clears, (unsigned)n->estops,
           (unsigned)n->controls_applied, (unsigned)n->controls_ignored_safe,
           (unsigned)n->controls_stale, (unsigned)n->watchdog_trips, (unsigned)n->limit_trips,
           (unsigned)n->button_trips, (unsigned)n->encoder_faults, (unsigned)n->states_tx,
           (unsigned)n->heartbeats_tx, (unsigned)n->capabilities_tx, (unsigned)n->faults_tx,
           (unsigned)n->frames_tx, (unsigned)n->tx_dropped, (unsigned)n->unexpected_frames,
           (unsigned)n->other_version_hellos, (unsigned)n->ticks, (unsigned)s->frames_ok,
           (unsigned)s->crc_errors, (unsigned)s->duplicates, (unsigned)s->sequence_gaps,
           (unsigned)n->controls_wrong_count, (unsigned)s->version_errors);
}

static void status(void)
{
    uint8_t i;
    printf("status %u %u %d %.9g %u %d ", (unsigned)rig_flags(&r), (unsigned)r.armed,
           motor_enabled, (double)motor_commands[0], (unsigned)r.latched_code, led);
    for (i = 0; i < motor_count; i++) {
        printf(i ? ",%.9g" : "%.9g", (double)motor_commands[i]);
    }
    printf("\n");
}

int main(void)
{
    static char line[8192];
    while (fgets(line, sizeof line, stdin)) {
        char *cmd = strtok(line, " \t\r\n");
        char *arg = strtok(NULL, " \t\r\n");
        if (cmd == NULL) {
            continue;
        }
        if (strcmp(cmd, "init") == 0) {
            rig_config c;
            char *a[6];
            int i;
            memset(&c, 0, sizeof c);
            for (i = 0; i < 6; i++) {
                a[i] = strtok(NULL, " \t\r\n");
            }
            if (arg == NULL || a[3] == NULL) {
                printf("error init needs 5 arguments\n");
            } else {
                c.state_rate_hz = (uint16_t)strtoul(arg, NULL, 0);
                c.watchdog_ms = (uint16_t)strtoul(a[0], NULL, 0);
                c.state_layout = (uint8_t)strtoul(a[2], NULL, 0);
                c.rig_id = (uint32_t)strtoul(a[3], NULL, 0);
                c.input_count = a[4] ? (uint8_t)strtoul(a[4], NULL, 0) : 1u;
                c.n_values = a[5] ? (uint8_t)strtoul(a[5], NULL, 0) : 0u;
                for (i = 0; i < (int)c.input_count && i < (int)HP_MAX_INPUTS; i++) {
                    c.input_low[i] = -(float)(i + 1) * strtof(a[1], NULL);
                    c.input_high[i] = strtof(a[1], NULL);
                }
                printf("init %d\n", rig_init(&r, &c, now));
                initialised = 1;
            }
        } else if (strcmp(cmd, "at") == 0 && arg) {
            now = (uint32_t)strtoul(arg, NULL, 0);
        } else if (!initialised && strcmp(cmd, "values") && strcmp(cmd, "sensor") &&
                   strcmp(cmd, "limit") && strcmp(cmd, "button") && strcmp(cmd, "txroom")) {
            printf("error not initialised\n");
        } else if (strcmp(cmd, "rx") == 0 && arg) {
            size_t i, len = strlen(arg);
            for (i = 0; i + 1 < len; i += 2) {
                int hi = hexval(arg[i]), lo = hexval(arg[i + 1]);
                if (hi < 0 || lo < 0) {
                    printf("error bad hex\n");
                    break;
                }
                rig_rx_byte(&r, (uint8_t)(hi * 16 + lo), now);
            }
        } else if (strcmp(cmd, "tick") == 0) {
            rig_tick(&r, now);
        } else if (strcmp(cmd, "poll") == 0) {
            rig_poll(&r, now);
        } else if (strcmp(cmd, "values") == 0) {
            int i = 0;
            for (; arg != NULL && i < 8; i++, arg = strtok(NULL, " \t\r\n")) {
                values[i] = strtof(arg, NULL);
            }
        } else if (strcmp(cmd, "sensor") == 0 && arg) {
            sensor_ok = atoi(arg);
        } else if (strcmp(cmd, "limit") == 0 && arg) {
            limits = (uint8_t)atoi(arg);
        } else if (strcmp(cmd, "button") == 0 && arg) {
            button = atoi(arg);
        } else if (strcmp(cmd, "txroom") == 0 && arg) {
            tx_room = atol(arg);
        } else if (strcmp(cmd, "status") == 0) {
            status();
        } else if (strcmp(cmd, "counters") == 0) {
            counters();
        } else {
            printf("error unknown command %s\n", cmd);
        }
        printf("end\n");
        fflush(stdout);
    }
    return 0;
}
