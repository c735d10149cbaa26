/*
 * ports/board/startup.c - reset and vector table for the STM32F401 (Cortex-M4F, 85 IRQs).
 * Copies .data from flash, zeroes .bss, turns the FPU on and calls main.
 */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;
int main(void);
void Reset_Handler(void);
void SysTick_Handler(void);
void USART2_IRQHandler(void);

static void Default_Handler(void)
{
    /* an unexpected interrupt or a fault: stop here; the IWDG resets the MCU (SAFE) */
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0;
    }
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm volatile("dsb\n isb");
    (void)main();
    for (;;) {
    }
}

typedef void (*vector)(void);

#define D Default_Handler
__attribute__((section(".vectors"), used)) static const vector vectors[16 + 86] = {
    (vector)(uintptr_t)&_stack_top, Reset_Handler,
    D, D, D, D, D, 0, 0, 0, 0, D, D, 0, D, SysTick_Handler,
    /* IRQ 0-37 */
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    USART2_IRQHandler, /* IRQ 38 */
    /* IRQ 39-85 */
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    D, D, D, D, D, D, D,
};
