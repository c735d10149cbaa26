/*
 * board_config.h - the pendulum this board drives: EDIT FOR YOUR RIG (docs/firmware.md,
 * "Wiring a pendulum" and "Bench checklist"). Values below are placeholders for a
 * 1024-line encoder on each joint and a belt drive; measure yours.
 */
#ifndef BOARD_CONFIG_H
#define BOARD_CONFIG_H

#define RIG_ID 0x4E554331u                 /* "NUC1": put your rig's serial number here */
#define RIG_STATE_RATE_HZ 1000u            /* the SysTick rate: STATE frames per second */
#define RIG_WATCHDOG_MS 50u
#define RIG_BAUD 460800u                   /* 1 kHz double-pendulum STATE needs >= 460800 */

#define CART_COUNTS_PER_M 20000.0f         /* quadrature counts (x4) per metre of travel */
#define ANGLE_COUNTS_PER_REV 4096.0f       /* 1024 lines x4 */
/* The links hang down at power-up: that reads as half a revolution (PROTOCOL.md 6). */
#define ANGLE_ZERO_OFFSET_COUNTS 2048
#define VELOCITY_CUTOFF_HZ 200.0f

/* Motor: the force at full duty, N (the driver's supply, the motor's torque constant and
   the pulley radius). CONTROL is in N; duty = force / this, saturated at +-1. */
#define FORCE_AT_FULL_DUTY_N 40.0f
#define MAX_COMMAND_N 40.0f
#define PWM_HZ 20000u

#endif /* BOARD_CONFIG_H */
