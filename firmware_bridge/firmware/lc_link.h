/* The MCU side of the link: a protocol state machine that any board drives with three calls.
 *
 *   lc_link_init(&link, &board, &caps);      once
 *   lc_link_rx(&link, bytes, n);             with whatever the UART delivered (any chunking)
 *   lc_link_poll(&link);                     every loop iteration: heartbeats, watchdog, retries
 *
 * Behaviour (docs/FIRMWARE.md "Reliability"): actuator frames are applied as they come (latest
 * value wins, nothing is queued); reliable messages (LED, CONFIG, HELLO; BUTTON and FAULT from here)
 * are acked, duplicates re-acked but not re-applied; when the host is silent for the CONFIG watchdog
 * the actuators go to the safe pose. Portable C99; the board supplies I/O through lc_board_t. */
#ifndef LC_LINK_H
#define LC_LINK_H
#include "lc_messages.h"

typedef struct {
    void *ctx;
    /* Queue bytes for the UART; must not block (drop when full, the host resynchronises). */
    void (*write)(void *ctx, const uint8_t *data, size_t n);
    uint64_t (*now_us)(void *ctx);
    void (*apply_targets)(void *ctx, const uint16_t *targets, uint8_t count, uint64_t capture_us, int safe);
    void (*set_led)(void *ctx, const lc_led_t *led);
    void (*on_config)(void *ctx, const lc_config_t *config); /* may be NULL */
} lc_board_t;

#define LC_HEARTBEAT_PERIOD_US 100000u
#define LC_RETRY_US 50000u
#define LC_MAX_TRIES 8
#define LC_EVENT_QUEUE 8
#define LC_DEDUP 8

typedef struct {
    uint8_t wire[LC_MAX_WIRE];
    int len;
    uint8_t type;
    uint16_t seq;
    uint64_t sent_us;
    uint8_t tries;
} lc_pending_t;

typedef struct {
    lc_board_t board;
    lc_hello_t caps;
    lc_deframer_t rx;
    uint16_t tx_seq;
    uint8_t state;
    int heartbeats_enabled; /* 1; the simulator turns it off to test the host's watchdog */
    lc_config_t config;
    int configured;
    uint64_t last_host_us, last_heartbeat_us, boot_us;
    /* reliable messages from the MCU: a small FIFO, the head in flight until acked */
    lc_pending_t events[LC_EVENT_QUEUE];
    uint8_t ev_head, ev_count;
    uint32_t events_dropped, events_given_up, retries;
    /* (type, seq) of recently handled reliable messages from the host */
    uint8_t seen_type[LC_DEDUP];
    uint16_t seen_seq[LC_DEDUP];
    uint8_t seen_next;
    uint32_t actuator_frames, duplicates, safe_entries;
} lc_link_t;

void lc_link_init(lc_link_t *l, const lc_board_t *board, const lc_hello_t *caps);
void lc_link_rx(lc_link_t *l, const uint8_t *data, size_t n);
void lc_link_poll(lc_link_t *l);

/* Unreliable messages go out at once; reliable ones queue (returns 0 when the queue is full). */
void lc_link_send(lc_link_t *l, const lc_msg_t *m);
int lc_link_send_reliable(lc_link_t *l, const lc_msg_t *m);
int lc_link_button(lc_link_t *l, uint8_t button, uint8_t event);
int lc_link_fault(lc_link_t *l, uint16_t code, uint8_t severity, uint8_t channel, const char *text);

#endif
