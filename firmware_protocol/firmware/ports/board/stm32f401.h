/*
 * stm32f401.h - the few STM32F401 registers the board port uses, from RM0368 (the
 * reference manual), written out here so that no vendor SDK is needed.
 */
#ifndef STM32F401_H
#define STM32F401_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))

/* RCC, 0x40023800 */
#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04)
#define RCC_CFGR REG(RCC_BASE + 0x08)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30)
#define RCC_APB1ENR REG(RCC_BASE + 0x40)
#define RCC_APB2ENR REG(RCC_BASE + 0x44)
#define RCC_CSR REG(RCC_BASE + 0x74)
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)

/* Flash interface, 0x40023C00 */
#define FLASH_ACR REG(0x40023C00u)

/* GPIO */
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIOC_BASE 0x40020800u
#define GPIO_MODER(g) REG((g) + 0x00)
#define GPIO_OTYPER(g) REG((g) + 0x04)
#define GPIO_OSPEEDR(g) REG((g) + 0x08)
#define GPIO_PUPDR(g) REG((g) + 0x0C)
#define GPIO_IDR(g) REG((g) + 0x10)
#define GPIO_ODR(g) REG((g) + 0x14)
#define GPIO_BSRR(g) REG((g) + 0x18)
#define GPIO_AFRL(g) REG((g) + 0x20)
#define GPIO_AFRH(g) REG((g) + 0x24)

/* Timers (general-purpose and advanced share these offsets) */
#define TIM1_BASE 0x40010000u
#define TIM2_BASE 0x40000000u
#define TIM3_BASE 0x40000400u
#define TIM4_BASE 0x40000800u
#define TIM5_BASE 0x40000C00u
#define TIM_CR1(t) REG((t) + 0x00)
#define TIM_SMCR(t) REG((t) + 0x08)
#define TIM_DIER(t) REG((t) + 0x0C)
#define TIM_SR(t) REG((t) + 0x10)
#define TIM_EGR(t) REG((t) + 0x14)
#define TIM_CCMR1(t) REG((t) + 0x18)
#define TIM_CCER(t) REG((t) + 0x20)
#define TIM_CNT(t) REG((t) + 0x24)
#define TIM_PSC(t) REG((t) + 0x28)
#define TIM_ARR(t) REG((t) + 0x2C)
#define TIM_CCR1(t) REG((t) + 0x34)
#define TIM_BDTR(t) REG((t) + 0x44)

/* USART2, 0x40004400 (APB1) */
#define USART2_BASE 0x40004400u
#define USART_SR(u) REG((u) + 0x00)
#define USART_DR(u) REG((u) + 0x04)
#define USART_BRR(u) REG((u) + 0x08)
#define USART_CR1(u) REG((u) + 0x0C)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_TXEIE (1u << 7)
#define USART_CR1_UE (1u << 13)
#define USART2_IRQn 38

/* Independent watchdog, 0x40003000 */
#define IWDG_KR REG(0x40003000u)
#define IWDG_PR REG(0x40003004u)
#define IWDG_RLR REG(0x40003008u)

/* Cortex-M4 core */
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define NVIC_ISER(n) REG(0xE000E100u + 4u * (n))
#define SCB_CPACR REG(0xE000ED88u)

#endif /* STM32F401_H */
