/*
 * ports/qemu/startup.c - reset and vector table for the mps2-an386 (Cortex-M4F, 32 IRQs).
 * Copies .data, zeroes .bss, turns the FPU on (CP10/CP11 full access) and calls main.
 */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;
int main(void);
void Reset_Handler(void);
void UART0RX_IRQHandler(void);
void UART0TX_IRQHandler(void);
void TIMER0_IRQHandler(void);
void TIMER1_IRQHandler(void);

static void Default_Handler(void)
{
    for (;;) {
        __asm volatile("bkpt 0");
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

__attribute__((section(".vectors"), used)) static const vector vectors[16 + 32] = {
    (vector)(uintptr_t)&_stack_top,
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
    UART0RX_IRQHandler, /* IRQ 0 */
    UART0TX_IRQHandler, /* IRQ 1 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler,    /* IRQ 2-7 */
    TIMER0_IRQHandler,  /* IRQ 8 */
    TIMER1_IRQHandler,  /* IRQ 9 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, /* IRQ 10-31 */
};
