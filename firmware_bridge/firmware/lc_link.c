#include "lc_link.h"

#include <string.h>

static uint64_t now(lc_link_t *l) { return l->board.now_us(l->board.ctx); }

void lc_link_init(lc_link_t *l, const lc_board_t *board, const lc_hello_t *caps) {
    memset(l, 0, sizeof *l);
    l->board = *board;
    l->caps = *caps;
    l->caps.role = 1;
    l->state = LC_STATE_SAFE; /* until the host sends a CONFIG and targets */
    l->heartbeats_enabled = 1;
    lc_deframer_init(&l->rx);
    l->boot_us = l->last_host_us = now(l);
    l->last_heartbeat_us = l->boot_us - LC_HEARTBEAT_PERIOD_US;
    for (int i = 0; i < LC_DEDUP; i++) l->seen_type[i] = 0; /* type 0 is never valid */
    lc_msg_t hello = {.type = LC_HELLO, .u.hello = l->caps};
    lc_link_send(l, &hello); /* announce ourselves at boot; the host also asks */
}

void lc_link_send(lc_link_t *l, const lc_msg_t *m) {
    uint8_t wire[LC_MAX_WIRE];
    int n = lc_frame_encode(m, l->tx_seq++, wire);
    if (n > 0) l->board.write(l->board.ctx, wire, (size_t)n);
}

int lc_link_send_reliable(lc_link_t *l, const lc_msg_t *m) {
    if (l->ev_count == LC_EVENT_QUEUE) {
        l->events_dropped++;
        return 0;
    }
    lc_pending_t *p = &l->events[(l->ev_head + l->ev_count) % LC_EVENT_QUEUE];
    p->seq = l->tx_seq++;
    p->type = m->type;
    p->len = lc_frame_encode(m, p->seq, p->wire);
    p->tries = 0;
    if (p->len <= 0) return 0;
    l->ev_count++;
    return 1;
}

int lc_link_button(lc_link_t *l, uint8_t button, uint8_t event) {
    lc_msg_t m = {.type = LC_BUTTON};
    m.u.button.button = button;
    m.u.button.event = event;
    m.u.button.mcu_ms = (uint32_t)((now(l) - l->boot_us) / 1000u);
    return lc_link_send_reliable(l, &m);
}

int lc_link_fault(lc_link_t *l, uint16_t code, uint8_t severity, uint8_t channel, const char *text) {
    lc_msg_t m = {.type = LC_FAULT};
    size_t n = strlen(text);
    m.u.fault.code = code;
    m.u.fault.severity = severity;
    m.u.fault.channel = channel;
    m.u.fault.text_len = (uint8_t)(n > LC_MAX_TEXT ? LC_MAX_TEXT : n);
    memcpy(m.u.fault.text, text, m.u.fault.text_len);
    return lc_link_send_reliable(l, &m);
}

static void ack(lc_link_t *l, uint8_t type, uint16_t seq, uint8_t status) {
    lc_msg_t m = {.type = LC_ACK};
    m.u.ack.acked_type = type;
    m.u.ack.acked_seq = seq;
    m.u.ack.status = status;
    lc_link_send(l, &m);
}

/* 1 if (type, seq) was handled recently (a retry whose ACK was lost), else remember it. */
static int seen(lc_link_t *l, uint8_t type, uint16_t seq) {
    for (int i = 0; i < LC_DEDUP; i++)
        if (l->seen_type[i] == type && l->seen_seq[i] == seq) return 1;
    l->seen_type[l->seen_next] = type;
    l->seen_seq[l->seen_next] = seq;
    l->seen_next = (uint8_t)((l->seen_next + 1) % LC_DEDUP);
    return 0;
}

static void go_safe(lc_link_t *l) {
    if (l->state != LC_STATE_SAFE) l->safe_entries++;
    l->state = LC_STATE_SAFE;
    if (l->configured)
        l->board.apply_targets(l->board.ctx, l->config.safe_targets, l->config.count, 0, 1);
}

static void handle(lc_link_t *l, const lc_frame_t *f) {
    const lc_msg_t *m = &f->msg;
    l->last_host_us = now(l);
    if (lc_is_reliable(f->type) && f->type != LC_HELLO && seen(l, f->type, f->seq)) {
        l->duplicates++;
        ack(l, f->type, f->seq, LC_ACK_OK);
        return;
    }
    switch (f->type) {
    case LC_HELLO: { /* answered by our HELLO, not an ACK */
        /* A host HELLO starts a session: a restarted host counts its seq from 0 again, so the
         * (type, seq) pairs seen so far must not swallow its first commands as duplicates. */
        memset(l->seen_type, 0, sizeof l->seen_type);
        lc_msg_t hello = {.type = LC_HELLO, .u.hello = l->caps};
        lc_link_send(l, &hello);
        break;
    }
    case LC_HEARTBEAT: break;
    case LC_TIME_REQUEST: {
        lc_msg_t r = {.type = LC_TIME_REPLY};
        r.u.time_reply.t1_us = m->u.time_request.t1_us;
        r.u.time_reply.t2_us = l->last_host_us;
        r.u.time_reply.t3_us = now(l);
        lc_link_send(l, &r);
        break;
    }
    case LC_ACTUATORS: {
        uint8_t n = m->u.actuators.count < l->caps.channels ? m->u.actuators.count : l->caps.channels;
        l->actuator_frames++;
        if (l->state != LC_STATE_FAULTED) l->state = LC_STATE_OK;
        l->board.apply_targets(l->board.ctx, m->u.actuators.targets, n, m->u.actuators.capture_us, 0);
        break;
    }
    case LC_LED:
        if (m->u.led.index >= l->caps.leds) { ack(l, f->type, f->seq, LC_ACK_BAD_PAYLOAD); break; }
        l->board.set_led(l->board.ctx, &m->u.led);
        ack(l, f->type, f->seq, LC_ACK_OK);
        break;
    case LC_CONFIG:
        l->config = m->u.config;
        if (l->config.count > l->caps.channels) l->config.count = l->caps.channels;
        l->configured = 1;
        if (l->board.on_config) l->board.on_config(l->board.ctx, &l->config);
        ack(l, f->type, f->seq, LC_ACK_OK);
        break;
    case LC_ACK:
        if (l->ev_count && l->events[l->ev_head].type == m->u.ack.acked_type &&
            l->events[l->ev_head].seq == m->u.ack.acked_seq) {
            l->ev_head = (uint8_t)((l->ev_head + 1) % LC_EVENT_QUEUE);
            l->ev_count--;
        }
        break;
    default: /* a type the host should not send us (BUTTON, IMU, FAULT, TIME_REPLY) */
        if (lc_is_reliable(f->type)) ack(l, f->type, f->seq, LC_ACK_UNSUPPORTED);
        break;
    }
}

void lc_link_rx(lc_link_t *l, const uint8_t *data, size_t n) {
    lc_frame_t f;
    for (size_t i = 0; i < n; i++)
        if (lc_deframer_feed(&l->rx, data[i], &f)) handle(l, &f);
}

void lc_link_poll(lc_link_t *l) {
    uint64_t t = now(l);
    if (l->heartbeats_enabled && t - l->last_heartbeat_us >= LC_HEARTBEAT_PERIOD_US) {
        lc_msg_t hb = {.type = LC_HEARTBEAT};
        uint32_t errors = lc_rx_errors(&l->rx.stats);
        hb.u.heartbeat.uptime_ms = (uint32_t)((t - l->boot_us) / 1000u);
        hb.u.heartbeat.state = l->state;
        hb.u.heartbeat.rx_errors = (uint16_t)(errors > 0xFFFF ? 0xFFFF : errors);
        lc_link_send(l, &hb);
        l->last_heartbeat_us = t;
    }
    if (l->configured && l->config.watchdog_ms && l->state != LC_STATE_SAFE &&
        t - l->last_host_us > (uint64_t)l->config.watchdog_ms * 1000u)
        go_safe(l);
    if (l->ev_count) {
        lc_pending_t *p = &l->events[l->ev_head];
        if (p->tries == 0 || t - p->sent_us >= LC_RETRY_US) {
            if (p->tries == LC_MAX_TRIES) { /* the host is gone: drop it rather than block newer events */
                l->events_given_up++;
                l->ev_head = (uint8_t)((l->ev_head + 1) % LC_EVENT_QUEUE);
                l->ev_count--;
                return;
            }
            if (p->tries) l->retries++;
            p->tries++;
            p->sent_us = t;
            l->board.write(l->board.ctx, p->wire, (size_t)p->len);
        }
    }
}
