#include "lc_messages.h"

#include <string.h>

#include "lc_cobs.h"
#include "lc_crc16.h"

/* Little-endian helpers: the wire is little-endian whatever the CPU is. */
static uint8_t *put8(uint8_t *p, uint8_t v) { *p++ = v; return p; }
static uint8_t *put16(uint8_t *p, uint16_t v) { *p++ = (uint8_t)v; *p++ = (uint8_t)(v >> 8); return p; }
static uint8_t *put32(uint8_t *p, uint32_t v) { p = put16(p, (uint16_t)v); return put16(p, (uint16_t)(v >> 16)); }
static uint8_t *put64(uint8_t *p, uint64_t v) { p = put32(p, (uint32_t)v); return put32(p, (uint32_t)(v >> 32)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) | ((uint32_t)get16(p + 2) << 16); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

int lc_is_reliable(uint8_t type) {
    return type == LC_HELLO || type == LC_LED || type == LC_CONFIG || type == LC_BUTTON || type == LC_FAULT;
}

int lc_payload_pack(const lc_msg_t *m, uint8_t *out) {
    uint8_t *p = out;
    switch (m->type) {
    case LC_HELLO: {
        const lc_hello_t *h = &m->u.hello;
        uint8_t n = h->name_len > LC_MAX_NAME ? LC_MAX_NAME : h->name_len;
        p = put8(p, h->role); p = put8(p, h->channels); p = put8(p, h->leds); p = put8(p, h->buttons);
        p = put8(p, h->flags); p = put16(p, h->max_rate_hz); p = put16(p, h->firmware_version); p = put8(p, n);
        memcpy(p, h->name, n); p += n;
        break;
    }
    case LC_HEARTBEAT:
        p = put32(p, m->u.heartbeat.uptime_ms); p = put8(p, m->u.heartbeat.state);
        p = put16(p, m->u.heartbeat.rx_errors);
        break;
    case LC_TIME_REQUEST: p = put64(p, m->u.time_request.t1_us); break;
    case LC_TIME_REPLY:
        p = put64(p, m->u.time_reply.t1_us); p = put64(p, m->u.time_reply.t2_us); p = put64(p, m->u.time_reply.t3_us);
        break;
    case LC_ACTUATORS:
        if (m->u.actuators.count > LC_MAX_CHANNELS) return -1;
        p = put64(p, m->u.actuators.capture_us); p = put8(p, m->u.actuators.count);
        for (int i = 0; i < m->u.actuators.count; i++) p = put16(p, m->u.actuators.targets[i]);
        break;
    case LC_LED: {
        const lc_led_t *l = &m->u.led;
        p = put8(p, l->index); p = put8(p, l->mode); p = put8(p, l->r); p = put8(p, l->g); p = put8(p, l->b);
        p = put16(p, l->period_ms);
        break;
    }
    case LC_BUTTON:
        p = put8(p, m->u.button.button); p = put8(p, m->u.button.event); p = put32(p, m->u.button.mcu_ms);
        break;
    case LC_IMU:
        p = put64(p, m->u.imu.t_us);
        for (int i = 0; i < 4; i++) p = put16(p, (uint16_t)m->u.imu.quat[i]);
        for (int i = 0; i < 3; i++) p = put16(p, (uint16_t)m->u.imu.accel_mg[i]);
        for (int i = 0; i < 3; i++) p = put16(p, (uint16_t)m->u.imu.gyro_mrad_s[i]);
        break;
    case LC_FAULT: {
        const lc_fault_t *f = &m->u.fault;
        uint8_t n = f->text_len > LC_MAX_TEXT ? LC_MAX_TEXT : f->text_len;
        p = put16(p, f->code); p = put8(p, f->severity); p = put8(p, f->channel); p = put8(p, n);
        memcpy(p, f->text, n); p += n;
        break;
    }
    case LC_CONFIG:
        if (m->u.config.count > LC_MAX_CHANNELS) return -1;
        p = put16(p, m->u.config.watchdog_ms); p = put8(p, m->u.config.count);
        for (int i = 0; i < m->u.config.count; i++) p = put16(p, m->u.config.safe_targets[i]);
        break;
    case LC_ACK:
        p = put8(p, m->u.ack.acked_type); p = put16(p, m->u.ack.acked_seq); p = put8(p, m->u.ack.status);
        break;
    default: return -1;
    }
    return (int)(p - out);
}

static int ascii(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] > 0x7F) return 0;
    return 1;
}

int lc_payload_unpack(uint8_t type, const uint8_t *p, size_t n, lc_msg_t *m) {
    memset(m, 0, sizeof *m);
    m->type = type;
    switch (type) {
    case LC_HELLO: {
        lc_hello_t *h = &m->u.hello;
        if (n < 10 || p[9] > LC_MAX_NAME || n != 10u + p[9] || !ascii(p + 10, p[9])) return LC_ERR_LENGTH;
        h->role = p[0]; h->channels = p[1]; h->leds = p[2]; h->buttons = p[3]; h->flags = p[4];
        h->max_rate_hz = get16(p + 5); h->firmware_version = get16(p + 7); h->name_len = p[9];
        memcpy(h->name, p + 10, h->name_len);
        return LC_OK;
    }
    case LC_HEARTBEAT:
        if (n != 7) return LC_ERR_LENGTH;
        m->u.heartbeat.uptime_ms = get32(p); m->u.heartbeat.state = p[4]; m->u.heartbeat.rx_errors = get16(p + 5);
        return LC_OK;
    case LC_TIME_REQUEST:
        if (n != 8) return LC_ERR_LENGTH;
        m->u.time_request.t1_us = get64(p);
        return LC_OK;
    case LC_TIME_REPLY:
        if (n != 24) return LC_ERR_LENGTH;
        m->u.time_reply.t1_us = get64(p); m->u.time_reply.t2_us = get64(p + 8); m->u.time_reply.t3_us = get64(p + 16);
        return LC_OK;
    case LC_ACTUATORS:
        if (n < 9 || p[8] > LC_MAX_CHANNELS || n != 9u + 2u * p[8]) return LC_ERR_LENGTH;
        m->u.actuators.capture_us = get64(p); m->u.actuators.count = p[8];
        for (int i = 0; i < p[8]; i++) m->u.actuators.targets[i] = get16(p + 9 + 2 * i);
        return LC_OK;
    case LC_LED:
        if (n != 7) return LC_ERR_LENGTH;
        m->u.led.index = p[0]; m->u.led.mode = p[1]; m->u.led.r = p[2]; m->u.led.g = p[3]; m->u.led.b = p[4];
        m->u.led.period_ms = get16(p + 5);
        return LC_OK;
    case LC_BUTTON:
        if (n != 6) return LC_ERR_LENGTH;
        m->u.button.button = p[0]; m->u.button.event = p[1]; m->u.button.mcu_ms = get32(p + 2);
        return LC_OK;
    case LC_IMU:
        if (n != 28) return LC_ERR_LENGTH;
        m->u.imu.t_us = get64(p);
        for (int i = 0; i < 4; i++) m->u.imu.quat[i] = (int16_t)get16(p + 8 + 2 * i);
        for (int i = 0; i < 3; i++) m->u.imu.accel_mg[i] = (int16_t)get16(p + 16 + 2 * i);
        for (int i = 0; i < 3; i++) m->u.imu.gyro_mrad_s[i] = (int16_t)get16(p + 22 + 2 * i);
        return LC_OK;
    case LC_FAULT:
        if (n < 5 || p[4] > LC_MAX_TEXT || n != 5u + p[4] || !ascii(p + 5, p[4])) return LC_ERR_LENGTH;
        m->u.fault.code = get16(p); m->u.fault.severity = p[2]; m->u.fault.channel = p[3]; m->u.fault.text_len = p[4];
        memcpy(m->u.fault.text, p + 5, p[4]);
        return LC_OK;
    case LC_CONFIG:
        if (n < 3 || p[2] > LC_MAX_CHANNELS || n != 3u + 2u * p[2]) return LC_ERR_LENGTH;
        m->u.config.watchdog_ms = get16(p); m->u.config.count = p[2];
        for (int i = 0; i < p[2]; i++) m->u.config.safe_targets[i] = get16(p + 3 + 2 * i);
        return LC_OK;
    case LC_ACK:
        if (n != 4) return LC_ERR_LENGTH;
        m->u.ack.acked_type = p[0]; m->u.ack.acked_seq = get16(p + 1); m->u.ack.status = p[3];
        return LC_OK;
    default: return LC_ERR_TYPE;
    }
}

int lc_raw_encode(const lc_msg_t *m, uint16_t seq, uint8_t *out) {
    int n = lc_payload_pack(m, out + LC_HEADER_SIZE);
    if (n < 0 || n > LC_MAX_PAYLOAD) return -1;
    uint8_t *p = put8(out, LC_VERSION);
    p = put8(p, m->type); p = put16(p, seq); put16(p, (uint16_t)n);
    uint16_t crc = lc_crc16(out, LC_HEADER_SIZE + (size_t)n, LC_CRC16_INIT);
    put16(out + LC_HEADER_SIZE + n, crc);
    return LC_HEADER_SIZE + n + LC_CRC_SIZE;
}

int lc_raw_decode(const uint8_t *raw, size_t n, lc_frame_t *f) {
    if (n < LC_HEADER_SIZE + LC_CRC_SIZE) return LC_ERR_LENGTH;
    if (lc_crc16(raw, n - LC_CRC_SIZE, LC_CRC16_INIT) != get16(raw + n - LC_CRC_SIZE)) return LC_ERR_CRC;
    f->version = raw[0]; f->type = raw[1]; f->seq = get16(raw + 2);
    if (f->version != LC_VERSION) return LC_ERR_VERSION;
    if (get16(raw + 4) != n - LC_HEADER_SIZE - LC_CRC_SIZE) return LC_ERR_LENGTH;
    return lc_payload_unpack(f->type, raw + LC_HEADER_SIZE, n - LC_HEADER_SIZE - LC_CRC_SIZE, &f->msg);
}

int lc_frame_encode(const lc_msg_t *m, uint16_t seq, uint8_t *out) {
    uint8_t raw[LC_MAX_RAW];
    int n = lc_raw_encode(m, seq, raw);
    if (n < 0) return -1;
    size_t w = lc_cobs_encode(raw, (size_t)n, out, LC_MAX_WIRE - 1);
    if (w == 0) return -1;
    out[w] = 0;
    return (int)w + 1;
}

void lc_deframer_init(lc_deframer_t *d) { memset(d, 0, sizeof *d); }

uint32_t lc_rx_errors(const lc_rx_stats_t *s) {
    return s->cobs_errors + s->crc_errors + s->length_errors + s->version_errors + s->unknown_types + s->overflows;
}

int lc_deframer_feed(lc_deframer_t *d, uint8_t byte, lc_frame_t *f) {
    if (byte != 0) {
        if (d->skipping) return 0;
        if (d->len >= LC_MAX_WIRE - 1) { /* no delimiter in time: drop up to the next 0x00 */
            d->stats.overflows++;
            d->skipping = 1;
            d->len = 0;
            return 0;
        }
        d->buf[d->len++] = byte;
        return 0;
    }
    size_t len = d->len;
    int skipping = d->skipping;
    d->len = 0;
    d->skipping = 0;
    if (skipping || len == 0) return 0; /* an empty block (0x00 0x00) is a harmless resync */
    uint8_t raw[LC_MAX_WIRE];
    int n = lc_cobs_decode(d->buf, len, raw, sizeof raw);
    if (n < 0) { d->stats.cobs_errors++; return 0; }
    switch (lc_raw_decode(raw, (size_t)n, f)) {
    case LC_OK: d->stats.frames++; return 1;
    case LC_ERR_CRC: d->stats.crc_errors++; return 0;
    case LC_ERR_VERSION: d->stats.version_errors++; return 0;
    case LC_ERR_TYPE: d->stats.unknown_types++; return 0;
    default: d->stats.length_errors++; return 0;
    }
}
