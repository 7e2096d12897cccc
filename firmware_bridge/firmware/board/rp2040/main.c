/* Thin RP2040 board file (Raspberry Pi Pico, Pico SDK): UART0 at 1 Mbaud on GP0/GP1, six hobby
 * servos on GP2..GP7 (50 Hz PWM, 500..2500 us), two status LEDs on GP8/GP9 (plus the on-board LED
 * on GP25 as LED 0's mirror), two buttons to ground on GP14/GP15. Everything protocol-related is in
 * lc_link.c; this file only moves bytes and pins. NOT compiled here (no Pico SDK in this repository's
 * CI): see ../../README.md for the build steps. */
#include <string.h>

#include "hardware/clocks.h"
#include "hardware/gpio.h"
#include "hardware/irq.h"
#include "hardware/pwm.h"
#include "hardware/uart.h"
#include "pico/stdlib.h"

#include "lc_link.h"

#define LINK_UART uart0
#define LINK_BAUD 1000000
#define PIN_TX 0
#define PIN_RX 1
#define SERVO_PIN0 2
#define N_SERVOS 6
#define LED_PIN0 8
#define N_LEDS 2
#define BUTTON_PIN0 14
#define N_BUTTONS 2
#define DEBOUNCE_US 20000
#define LONG_PRESS_US 800000

/* UART RX ring filled by the interrupt; the main loop feeds lc_link_rx. 1 KiB = 10 ms at 1 Mbaud. */
static volatile uint8_t rx_ring[1024];
static volatile uint16_t rx_head, rx_tail;

static void on_uart_rx(void) {
    while (uart_is_readable(LINK_UART)) {
        uint8_t c = uart_getc(LINK_UART);
        uint16_t next = (uint16_t)((rx_head + 1) % sizeof rx_ring);
        if (next != rx_tail) { rx_ring[rx_head] = c; rx_head = next; } /* full: drop, the deframer resyncs */
    }
}

static void uart_write(void *ctx, const uint8_t *data, size_t n) {
    (void)ctx;
    /* 32-byte hardware FIFO; at 1 Mbaud a 250-byte frame takes 2.5 ms. Frames are small and rare from
     * this side (heartbeat 10 Hz, acks, events), so blocking on the FIFO here is bounded. */
    uart_write_blocking(LINK_UART, data, n);
}

static uint64_t now_us(void *ctx) { (void)ctx; return time_us_64(); }

static void apply_targets(void *ctx, const uint16_t *t, uint8_t n, uint64_t capture_us, int safe) {
    (void)ctx; (void)capture_us; (void)safe;
    for (uint8_t i = 0; i < n && i < N_SERVOS; i++) {
        uint32_t pulse_us = 500u + (uint32_t)t[i] * 2000u / 65535u; /* Q0.16 travel -> 500..2500 us */
        pwm_set_gpio_level(SERVO_PIN0 + i, (uint16_t)pulse_us); /* 1 MHz PWM clock: level = microseconds */
    }
}

static lc_led_t leds[N_LEDS];
static void set_led(void *ctx, const lc_led_t *led) { (void)ctx; if (led->index < N_LEDS) leds[led->index] = *led; }

static void update_leds(void) {
    uint32_t ms = to_ms_since_boot(get_absolute_time());
    for (int i = 0; i < N_LEDS; i++) {
        const lc_led_t *l = &leds[i];
        int on = l->mode == 1 || ((l->mode == 2 || l->mode == 3) && l->period_ms && (ms % l->period_ms) < l->period_ms / 2);
        gpio_put(LED_PIN0 + i, on);
        if (i == 0) gpio_put(PICO_DEFAULT_LED_PIN, on);
    }
}

static void servo_init(void) {
    for (int i = 0; i < N_SERVOS; i++) {
        uint pin = SERVO_PIN0 + i, slice = pwm_gpio_to_slice_num(pin);
        gpio_set_function(pin, GPIO_FUNC_PWM);
        pwm_config c = pwm_get_default_config();
        pwm_config_set_clkdiv(&c, (float)clock_get_hz(clk_sys) / 1000000.0f); /* 1 MHz */
        pwm_config_set_wrap(&c, 20000 - 1);                                    /* 50 Hz */
        pwm_init(slice, &c, true);
        /* No level until the host's CONFIG or first frame: the servo stays unpowered (limp), not jerked. */
    }
}

typedef struct { int level; uint64_t changed_us; int long_sent; } button_t;
static button_t buttons[N_BUTTONS];

static void poll_buttons(lc_link_t *link) {
    uint64_t t = time_us_64();
    for (int i = 0; i < N_BUTTONS; i++) {
        button_t *b = &buttons[i];
        int pressed = !gpio_get(BUTTON_PIN0 + i);
        if (pressed != b->level && t - b->changed_us > DEBOUNCE_US) {
            b->level = pressed;
            b->changed_us = t;
            b->long_sent = 0;
            lc_link_button(link, (uint8_t)i, pressed ? 1 : 0);
        } else if (pressed && b->level && !b->long_sent && t - b->changed_us > LONG_PRESS_US) {
            b->long_sent = 1;
            lc_link_button(link, (uint8_t)i, 2);
        }
    }
}

int main(void) {
    uart_init(LINK_UART, LINK_BAUD);
    gpio_set_function(PIN_TX, GPIO_FUNC_UART);
    gpio_set_function(PIN_RX, GPIO_FUNC_UART);
    uart_set_fifo_enabled(LINK_UART, true);
    irq_set_exclusive_handler(UART0_IRQ, on_uart_rx);
    irq_set_enabled(UART0_IRQ, true);
    uart_set_irq_enables(LINK_UART, true, false);
    servo_init();
    gpio_init(PICO_DEFAULT_LED_PIN);
    gpio_set_dir(PICO_DEFAULT_LED_PIN, GPIO_OUT);
    for (int i = 0; i < N_LEDS; i++) { gpio_init(LED_PIN0 + i); gpio_set_dir(LED_PIN0 + i, GPIO_OUT); }
    for (int i = 0; i < N_BUTTONS; i++) {
        gpio_init(BUTTON_PIN0 + i);
        gpio_set_dir(BUTTON_PIN0 + i, GPIO_IN);
        gpio_pull_up(BUTTON_PIN0 + i);
    }

    lc_hello_t caps = {.role = 1, .channels = N_SERVOS, .leds = N_LEDS, .buttons = N_BUTTONS,
                       .max_rate_hz = 200, .firmware_version = 0x0100};
    memcpy(caps.name, "lc-rp2040", 9);
    caps.name_len = 9;
    lc_board_t board = {.ctx = NULL, .write = uart_write, .now_us = now_us, .apply_targets = apply_targets,
                        .set_led = set_led, .on_config = NULL};
    static lc_link_t link;
    lc_link_init(&link, &board, &caps);

    for (;;) {
        uint8_t chunk[64];
        size_t n = 0;
        while (rx_tail != rx_head && n < sizeof chunk) {
            chunk[n++] = rx_ring[rx_tail];
            rx_tail = (uint16_t)((rx_tail + 1) % sizeof rx_ring);
        }
        if (n) lc_link_rx(&link, chunk, n);
        lc_link_poll(&link);
        poll_buttons(&link);
        update_leds();
    }
}
