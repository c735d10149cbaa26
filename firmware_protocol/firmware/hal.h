/*
 * hal.h - what the portable rig core (core/rig.c) needs from a board. Implemented once per
 * port: ports/host (Linux, pseudo-terminal, simulated pendulum), ports/qemu (mps2-an386,
 * simulated pendulum on the MCU), ports/board (STM32 Nucleo-F401RE, real encoders and motor
 * driver), ports/script (the test harness: every input set by a script).
 *
 * Contexts. The core runs in ONE context, the port's main loop: rig_rx_byte(), rig_tick()
 * and rig_poll() are never called from an interrupt and never concurrently. Interrupt
 * handlers only move bytes into and out of lock-free rings and timestamp the timer tick
 * (see docs/firmware.md, "What must never block"). So every hal_* function below is called
 * from the main loop and MUST return without waiting: no busy-wait on a UART, no delay
 * loop, no allocation.
 *
 * Numbers. State values and the command are float (IEEE-754 binary32): the protocol's own
 * type. The ports chosen have a single-precision FPU (Cortex-M4F), where a float costs what
 * an int does; on a core without FPU (Cortex-M0+) the core's few float operations per frame
 * (a saturation and two comparisons) cost some tens of cycles in libgcc's soft-float, far
 * below one UART byte time, so no fixed-point variant is kept (docs/firmware.md).
 */
#ifndef HIL_HAL_H
#define HIL_HAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Free-running microsecond clock; wraps at 2^32 (the protocol's timestamp_us). */
uint32_t hal_clock_us(void);

/*
 * Queue one whole frame for the UART transmitter. Non-blocking: returns 1 if all n bytes
 * were queued, 0 if the transmit ring had no room for the whole frame (nothing is queued;
 * the frame is lost, as on a line nobody drains).
 */
int hal_uart_write(const uint8_t *bytes, size_t n);

/*
 * Sample the plant's state, in the SI units and the order of PROTOCOL.md section 6, at tick
 * time t_us (the timer tick that asked for it). Returns 1, or 0 if the sensors failed (the
 * core then raises FAULT ENCODER and sends no STATE). A board reads its encoders (captured
 * in the tick interrupt) and estimates rates (core/encoders.h); a simulation advances its
 * model to t_us.
 */
int hal_read_state(uint32_t t_us, float *values, uint8_t count);

/*
 * Actuators: enable (1) or disable (0) every power stage; the commands, one per input (count
 * of them, the rig's input_count, each already within its limits), in physical units.
 */
void hal_motor_enable(int on, uint32_t now_us);
void hal_motor_set(const float *commands, uint8_t count, uint32_t now_us);

/* Limit switches: bit 0 the -x end of the track, bit 1 the +x end; 1 = pressed. */
uint8_t hal_limit_switches(void);

/* The rig's own emergency-stop input: 1 while it is tripped (pressed or its loop open). */
int hal_estop_button(void);

/* Status LED: on while ARMED. */
void hal_led(int on);

#ifdef __cplusplus
}
#endif

#endif /* HIL_HAL_H */
