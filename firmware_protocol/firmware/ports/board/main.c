/*
 * ports/board/main.c - the rig core on an STM32 Nucleo-F401RE (Cortex-M4F, 84 MHz), bare
 * registers (stm32f401.h), no vendor SDK. Build only in CI: `make board` prints its flash
 * and RAM sizes. The pendulum's numbers are in board_config.h.
 *
 * Pin map (Nucleo-64 Arduino names in brackets; docs/firmware.md has the wiring):
 *   USART2  PA2 TX / PA3 RX, AF7        the ST-LINK virtual COM port (USB): the host link
 *   TIM2    PA0 CH1 / PA1 CH2, AF1 [A0/A1]  cart encoder A/B (32-bit counter)
 *   TIM3    PA6 CH1 / PA7 CH2, AF2 [D12/D11] link 1 encoder A/B (16-bit, extended here)
 *   TIM4    PB6 CH1 / PB7 CH2, AF2 [D10/CN7-21] link 2 encoder A/B (16-bit, extended here)
 *   TIM1    PA8 CH1, AF1 [D7]           motor PWM, 20 kHz
 *   GPIO    PA9 [D8] motor direction, PC7 [D9] motor driver enable (high = enabled)
 *   GPIO    PB4 [D5] limit switch -x, PB5 [D4] limit switch +x, PA10 [D2] e-stop loop:
 *           inputs with pull-up, normally-closed contacts to GND: high = pressed or broken
 *   GPIO    PA5 [D13] LD2, on while ARMED
 *   TIM5    free-running 1 MHz, 32-bit: hal_clock_us (wraps at 2^32 us like timestamp_us)
 *   SysTick the state-rate tick; its handler snapshots the encoders and TIM5 only
 *   IWDG    ~100 ms, reloaded by the main loop: a hung loop resets the MCU, and a reset
 *           MCU is SAFE (pins float to inputs; the driver's enable has a pull-down)
 */
#include <stdint.h>

#include "board_config.h"
#include "encoders.h"
#include "hal.h"
#include "rig.h"
#include "ring.h"
#include "stm32f401.h"

#define SYSCLK_HZ 84000000u
#define APB1_HZ 42000000u
#define TIMCLK_HZ 84000000u /* APB1 and APB2 timer clocks (APB1 x2 as its prescaler is 2) */
#define PWM_ARR (TIMCLK_HZ / PWM_HZ - 1u)

static ring rx_ring, tx_ring;
static volatile uint32_t tick_count, tick_time_us, rx_overruns;
static volatile uint32_t snap_raw[3]; /* TIM2, TIM3, TIM4 counters at the last tick */
static int32_t counts[3];
static uint16_t last_raw16[2];
static uint8_t counts_primed;
static enc_estimator est;
static rig the_rig;

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

/* ------------------------------------------------------------------ clocks */
static void clock_init(void)
{
    /* HSI 16 MHz -> PLL: /M 16, xN 336, /P 4 = 84 MHz, /Q 7 = 48 MHz */
    RCC_CR |= RCC_CR_HSION;
    while (!(RCC_CR & RCC_CR_HSIRDY)) {
    }
    RCC_PLLCFGR = 16u | (336u << 6) | (1u << 16) /* P = 4 */ | (7u << 24); /* source HSI */
    RCC_CR |= RCC_CR_PLLON;
    while (!(RCC_CR & RCC_CR_PLLRDY)) {
    }
    FLASH_ACR = 2u | (1u << 8) | (1u << 9) | (1u << 10); /* 2 wait states, prefetch, caches */
    RCC_CFGR = (4u << 10) /* APB1 /2 */ | 2u;                 /* SYSCLK = PLL */
    while (((RCC_CFGR >> 2) & 3u) != 2u) {
    }
}

static void gpio_mode(uint32_t g, unsigned pin, unsigned mode, unsigned af, unsigned pull)
{
    GPIO_MODER(g) = (GPIO_MODER(g) & ~(3u << (2 * pin))) | (mode << (2 * pin));
    GPIO_PUPDR(g) = (GPIO_PUPDR(g) & ~(3u << (2 * pin))) | (pull << (2 * pin));
    if (mode == 2u) {
        if (pin < 8) {
            GPIO_AFRL(g) = (GPIO_AFRL(g) & ~(0xFu << (4 * pin))) | (af << (4 * pin));
        } else {
            GPIO_AFRH(g) = (GPIO_AFRH(g) & ~(0xFu << (4 * (pin - 8)))) | (af << (4 * (pin - 8)));
        }
        GPIO_OSPEEDR(g) |= 2u << (2 * pin);
    }
}

static void encoder_init(uint32_t tim, uint32_t arr)
{
    TIM_ARR(tim) = arr;
    TIM_CCMR1(tim) = 1u | (3u << 4) | (1u << 8) | (3u << 12); /* CC1S = CC2S = TI, filter 3 */
    TIM_CCER(tim) = 0;                                          /* both rising, non-inverted */
    TIM_SMCR(tim) = 3u;                                         /* encoder mode 3: x4 */
    TIM_CNT(tim) = 0;
    TIM_CR1(tim) = 1u;
}

static void peripherals_init(void)
{
    RCC_AHB1ENR |= 7u;                                           /* GPIOA, B, C */
    RCC_APB1ENR |= (1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 17); /* TIM2-5, USART2 */
    RCC_APB2ENR |= 1u;                                           /* TIM1 */
    /* motor driver first: enable low, direction low, PWM pin as timer output at 0 */
    GPIO_BSRR(GPIOC_BASE) = 1u << (7 + 16);
    gpio_mode(GPIOC_BASE, 7, 1, 0, 0);
    GPIO_BSRR(GPIOA_BASE) = 1u << (9 + 16);
    gpio_mode(GPIOA_BASE, 9, 1, 0, 0);
    TIM_PSC(TIM1_BASE) = 0;
    TIM_ARR(TIM1_BASE) = PWM_ARR;
    TIM_CCR1(TIM1_BASE) = 0;
    TIM_CCMR1(TIM1_BASE) = (6u << 4) | (1u << 3); /* PWM mode 1, preload */
    TIM_CCER(TIM1_BASE) = 1u;                      /* CC1E */
    TIM_BDTR(TIM1_BASE) = 1u << 15;                /* MOE: the advanced timer's main output */
    TIM_EGR(TIM1_BASE) = 1u;
    TIM_CR1(TIM1_BASE) = (1u << 7) | 1u;           /* ARPE, CEN */
    gpio_mode(GPIOA_BASE, 8, 2, 1, 0);
    /* LED */
    gpio_mode(GPIOA_BASE, 5, 1, 0, 0);
    /* limit switches and e-stop loop: pull-ups */
    gpio_mode(GPIOB_BASE, 4, 0, 0, 1);
    gpio_mode(GPIOB_BASE, 5, 0, 0, 1);
    gpio_mode(GPIOA_BASE, 10, 0, 0, 1);
    /* encoders */
    gpio_mode(GPIOA_BASE, 0, 2, 1, 1);
    gpio_mode(GPIOA_BASE, 1, 2, 1, 1);
    gpio_mode(GPIOA_BASE, 6, 2, 2, 1);
    gpio_mode(GPIOA_BASE, 7, 2, 2, 1);
    gpio_mode(GPIOB_BASE, 6, 2, 2, 1);
    gpio_mode(GPIOB_BASE, 7, 2, 2, 1);
    encoder_init(TIM2_BASE, 0xFFFFFFFFu);
    encoder_init(TIM3_BASE, 0xFFFFu);
    encoder_init(TIM4_BASE, 0xFFFFu);
    /* the microsecond clock */
    TIM_PSC(TIM5_BASE) = TIMCLK_HZ / 1000000u - 1u;
    TIM_ARR(TIM5_BASE) = 0xFFFFFFFFu;
    TIM_EGR(TIM5_BASE) = 1u;
    TIM_CR1(TIM5_BASE) = 1u;
    /* USART2, 8N1 */
    gpio_mode(GPIOA_BASE, 2, 2, 7, 0);
    gpio_mode(GPIOA_BASE, 3, 2, 7, 1);
    USART_BRR(USART2_BASE) = (APB1_HZ + RIG_BAUD / 2u) / RIG_BAUD;
    USART_CR1(USART2_BASE) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    NVIC_ISER(USART2_IRQn / 32) = 1u << (USART2_IRQn % 32);
}

/* ------------------------------------------------------------------ interrupts */
void USART2_IRQHandler(void)
{
    uint32_t sr = USART_SR(USART2_BASE);
    uint8_t b;
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t d = (uint8_t)USART_DR(USART2_BASE); /* reading DR clears RXNE and ORE */
        if ((sr & USART_SR_ORE) || !ring_put(&rx_ring, d)) {
            rx_overruns++;
        }
    }
    if ((sr & USART_SR_TXE) && (USART_CR1(USART2_BASE) & USART_CR1_TXEIE)) {
        if (ring_get(&tx_ring, &b)) {
            USART_DR(USART2_BASE) = b;
        } else {
            USART_CR1(USART2_BASE) &= ~USART_CR1_TXEIE;
        }
    }
}

void SysTick_Handler(void)
{
    /* register reads only: the sampling instant is this interrupt's */
    tick_time_us = TIM_CNT(TIM5_BASE);
    snap_raw[0] = TIM_CNT(TIM2_BASE);
    snap_raw[1] = TIM_CNT(TIM3_BASE);
    snap_raw[2] = TIM_CNT(TIM4_BASE);
    tick_count++;
}

/* ------------------------------------------------------------------ HAL */
uint32_t hal_clock_us(void)
{
    return TIM_CNT(TIM5_BASE);
}

int hal_uart_write(const uint8_t *bytes, size_t n)
{
    uint32_t s;
    if (!ring_put_all(&tx_ring, bytes, n)) {
        return 0;
    }
    s = irq_save();
    USART_CR1(USART2_BASE) |= USART_CR1_TXEIE; /* the TXE interrupt drains the ring */
    irq_restore(s);
    return 1;
}

int hal_read_state(uint32_t t_us, float *values, uint8_t count)
{
    uint32_t s = irq_save();
    uint32_t raw0 = snap_raw[0], raw1 = snap_raw[1], raw2 = snap_raw[2];
    irq_restore(s);
    if (count != 6) {
        return 0; /* this board is wired for the double pendulum */
    }
    if (!counts_primed) {
        counts_primed = 1;
        last_raw16[0] = (uint16_t)raw1;
        last_raw16[1] = (uint16_t)raw2;
    }
    /* 16-bit counters extended: fewer than 32768 counts move between two ticks */
    counts[0] = (int32_t)raw0;
    counts[1] += (int16_t)((uint16_t)raw1 - last_raw16[0]);
    counts[2] += (int16_t)((uint16_t)raw2 - last_raw16[1]);
    last_raw16[0] = (uint16_t)raw1;
    last_raw16[1] = (uint16_t)raw2;
    enc_update(&est, counts, t_us, values);
    return 1;
}

void hal_motor_enable(int on, uint32_t now_us)
{
    (void)now_us;
    if (!on) {
        TIM_CCR1(TIM1_BASE) = 0;
    }
    GPIO_BSRR(GPIOC_BASE) = on ? (1u << 7) : (1u << (7 + 16));
}

void hal_motor_set(const float *commands, uint8_t count, uint32_t now_us)
{
    float duty = count > 0u ? commands[0] / FORCE_AT_FULL_DUTY_N : 0.0f; /* one motor */
    (void)now_us;
    if (duty < 0.0f) {
        GPIO_BSRR(GPIOA_BASE) = 1u << (9 + 16);
        duty = -duty;
    } else {
        GPIO_BSRR(GPIOA_BASE) = 1u << 9;
    }
    if (duty > 1.0f) {
        duty = 1.0f;
    }
    TIM_CCR1(TIM1_BASE) = (uint32_t)(duty * (float)(PWM_ARR + 1u));
}

uint8_t hal_limit_switches(void)
{
    uint32_t idr = GPIO_IDR(GPIOB_BASE);
    return (uint8_t)(((idr >> 4) & 1u) | (((idr >> 5) & 1u) << 1));
}

int hal_estop_button(void)
{
    return (int)((GPIO_IDR(GPIOA_BASE) >> 10) & 1u);
}

void hal_led(int on)
{
    GPIO_BSRR(GPIOA_BASE) = on ? (1u << 5) : (1u << (5 + 16));
}

int main(void)
{
    static const float scale[3] = {1.0f / CART_COUNTS_PER_M,
                                   6.28318531f / ANGLE_COUNTS_PER_REV,
                                   6.28318531f / ANGLE_COUNTS_PER_REV};
    static const int32_t offset[3] = {0, ANGLE_ZERO_OFFSET_COUNTS, ANGLE_ZERO_OFFSET_COUNTS};
    rig_config cfg;
    uint32_t seen = 0;
    clock_init();
    peripherals_init();
    enc_init(&est, 3, scale, offset, VELOCITY_CUTOFF_HZ);
    /* the independent watchdog: LSI ~32 kHz / 32 = 1 kHz, 100 counts */
    IWDG_KR = 0x5555u;
    IWDG_PR = 3u;
    IWDG_RLR = 100u;
    IWDG_KR = 0xCCCCu;
    cfg.rig_id = RIG_ID;
    cfg.state_layout = HP_LAYOUT_DOUBLE_INVERTED_PENDULUM;
    cfg.state_rate_hz = RIG_STATE_RATE_HZ;
    cfg.watchdog_ms = RIG_WATCHDOG_MS;
    rig_config_one_input(&cfg, MAX_COMMAND_N);
    (void)rig_init(&the_rig, &cfg, hal_clock_us());
    SYST_RVR = SYSCLK_HZ / RIG_STATE_RATE_HZ - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */
    for (;;) {
        uint8_t byte;
        uint32_t ticks, s;
        IWDG_KR = 0xAAAAu;
        while (ring_get(&rx_ring, &byte)) {
            rig_rx_byte(&the_rig, byte, hal_clock_us());
        }
        s = irq_save();
        ticks = tick_count;
        irq_restore(s);
        if (ticks != seen) {
            seen = ticks;
            rig_tick(&the_rig, tick_time_us);
        }
        rig_poll(&the_rig, hal_clock_us());
        s = irq_save();
        if (ring_used(&rx_ring) == 0 && tick_count == seen) {
            __asm volatile("wfi");
        }
        irq_restore(s);
    }
}
