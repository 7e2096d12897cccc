/* Host-only codec driver for the tests: the C codec answers line by line on stdin/stdout.
 *
 *   E <type> <seq> <fields...>   encode -> wire hex (COBS + 0x00)
 *   D <wire hex>                 decode -> "<type> <seq> <fields...>" then the re-encoded wire hex, or "ERR <code>"
 *   C <hex>                      CRC-16/CCITT-FALSE of the bytes -> 4 hex digits
 *   S <hex>                      COBS encode -> hex;   U <hex>: COBS decode -> hex or "ERR"
 *
 * Fields are the message's fields in protocol.py order; a tuple is its length then its items; a
 * string is its ASCII as hex ("-" when empty). firmware_bridge/protocol.py writes the same form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lc_cobs.h"
#include "../lc_crc16.h"
#include "../lc_messages.h"

static char *tok(void) { return strtok(NULL, " \t\r\n"); }
static long long num(void) {
    char *t = tok();
    return t ? strtoll(t, NULL, 10) : 0;
}
static unsigned long long unum(void) {
    char *t = tok();
    return t ? strtoull(t, NULL, 10) : 0;
}
static int unhex(const char *h, uint8_t *out, size_t cap) {
    size_t n = strlen(h);
    if (n % 2 || n / 2 > cap) return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return (int)(n / 2);
}
static void puthex(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}
static uint8_t text(char *dst, size_t cap) {
    char *t = tok();
    if (!t || strcmp(t, "-") == 0) return 0;
    int n = unhex(t, (uint8_t *)dst, cap);
    return (uint8_t)(n < 0 ? 0 : n);
}
static void puttext(const char *s, size_t n) {
    if (!n) printf(" -");
    else { putchar(' '); puthex((const uint8_t *)s, n); }
}

static int parse(lc_msg_t *m) {
    switch (m->type) {
    case LC_HELLO: {
        lc_hello_t *h = &m->u.hello;
        h->role = (uint8_t)num(); h->channels = (uint8_t)num(); h->leds = (uint8_t)num(); h->buttons = (uint8_t)num();
        h->flags = (uint8_t)num(); h->max_rate_hz = (uint16_t)num(); h->firmware_version = (uint16_t)num();
        h->name_len = text(h->name, LC_MAX_NAME);
        return 0;
    }
    case LC_HEARTBEAT:
        m->u.heartbeat.uptime_ms = (uint32_t)unum(); m->u.heartbeat.state = (uint8_t)num();
        m->u.heartbeat.rx_errors = (uint16_t)num();
        return 0;
    case LC_TIME_REQUEST: m->u.time_request.t1_us = unum(); return 0;
    case LC_TIME_REPLY:
        m->u.time_reply.t1_us = unum(); m->u.time_reply.t2_us = unum(); m->u.time_reply.t3_us = unum();
        return 0;
    case LC_ACTUATORS: case LC_CONFIG: {
        int is_act = m->type == LC_ACTUATORS;
        uint16_t *t = is_act ? m->u.actuators.targets : m->u.config.safe_targets;
        if (is_act) m->u.actuators.capture_us = unum(); else m->u.config.watchdog_ms = (uint16_t)num();
        long long n = num();
        if (n < 0 || n > LC_MAX_CHANNELS) return -1;
        for (int i = 0; i < n; i++) t[i] = (uint16_t)num();
        if (is_act) m->u.actuators.count = (uint8_t)n; else m->u.config.count = (uint8_t)n;
        return 0;
    }
    case LC_LED: {
        lc_led_t *l = &m->u.led;
        l->index = (uint8_t)num(); l->mode = (uint8_t)num(); l->r = (uint8_t)num(); l->g = (uint8_t)num();
        l->b = (uint8_t)num(); l->period_ms = (uint16_t)num();
        return 0;
    }
    case LC_BUTTON:
        m->u.button.button = (uint8_t)num(); m->u.button.event = (uint8_t)num(); m->u.button.mcu_ms = (uint32_t)unum();
        return 0;
    case LC_IMU:
        m->u.imu.t_us = unum();
        if (num() != 4) return -1;
        for (int i = 0; i < 4; i++) m->u.imu.quat[i] = (int16_t)num();
        if (num() != 3) return -1;
        for (int i = 0; i < 3; i++) m->u.imu.accel_mg[i] = (int16_t)num();
        if (num() != 3) return -1;
        for (int i = 0; i < 3; i++) m->u.imu.gyro_mrad_s[i] = (int16_t)num();
        return 0;
    case LC_FAULT:
        m->u.fault.code = (uint16_t)num(); m->u.fault.severity = (uint8_t)num(); m->u.fault.channel = (uint8_t)num();
        m->u.fault.text_len = text(m->u.fault.text, LC_MAX_TEXT);
        return 0;
    case LC_ACK:
        m->u.ack.acked_type = (uint8_t)num(); m->u.ack.acked_seq = (uint16_t)num(); m->u.ack.status = (uint8_t)num();
        return 0;
    default: return -1;
    }
}

static void print(const lc_frame_t *f) {
    const lc_msg_t *m = &f->msg;
    printf("%u %u", f->type, f->seq);
    switch (m->type) {
    case LC_HELLO: {
        const lc_hello_t *h = &m->u.hello;
        printf(" %u %u %u %u %u %u %u", h->role, h->channels, h->leds, h->buttons, h->flags, h->max_rate_hz,
               h->firmware_version);
        puttext(h->name, h->name_len);
        break;
    }
    case LC_HEARTBEAT:
        printf(" %lu %u %u", (unsigned long)m->u.heartbeat.uptime_ms, m->u.heartbeat.state, m->u.heartbeat.rx_errors);
        break;
    case LC_TIME_REQUEST: printf(" %llu", (unsigned long long)m->u.time_request.t1_us); break;
    case LC_TIME_REPLY:
        printf(" %llu %llu %llu", (unsigned long long)m->u.time_reply.t1_us, (unsigned long long)m->u.time_reply.t2_us,
               (unsigned long long)m->u.time_reply.t3_us);
        break;
    case LC_ACTUATORS:
        printf(" %llu %u", (unsigned long long)m->u.actuators.capture_us, m->u.actuators.count);
        for (int i = 0; i < m->u.actuators.count; i++) printf(" %u", m->u.actuators.targets[i]);
        break;
    case LC_CONFIG:
        printf(" %u %u", m->u.config.watchdog_ms, m->u.config.count);
        for (int i = 0; i < m->u.config.count; i++) printf(" %u", m->u.config.safe_targets[i]);
        break;
    case LC_LED:
        printf(" %u %u %u %u %u %u", m->u.led.index, m->u.led.mode, m->u.led.r, m->u.led.g, m->u.led.b,
               m->u.led.period_ms);
        break;
    case LC_BUTTON:
        printf(" %u %u %lu", m->u.button.button, m->u.button.event, (unsigned long)m->u.button.mcu_ms);
        break;
    case LC_IMU:
        printf(" %llu 4", (unsigned long long)m->u.imu.t_us);
        for (int i = 0; i < 4; i++) printf(" %d", m->u.imu.quat[i]);
        printf(" 3");
        for (int i = 0; i < 3; i++) printf(" %d", m->u.imu.accel_mg[i]);
        printf(" 3");
        for (int i = 0; i < 3; i++) printf(" %d", m->u.imu.gyro_mrad_s[i]);
        break;
    case LC_FAULT:
        printf(" %u %u %u", m->u.fault.code, m->u.fault.severity, m->u.fault.channel);
        puttext(m->u.fault.text, m->u.fault.text_len);
        break;
    case LC_ACK: printf(" %u %u %u", m->u.ack.acked_type, m->u.ack.acked_seq, m->u.ack.status); break;
    }
}

int main(void) {
    char line[4096];
    uint8_t buf[2048], out[2048];
    while (fgets(line, sizeof line, stdin)) {
        char *cmd = strtok(line, " \t\r\n");
        if (!cmd) continue;
        if (strcmp(cmd, "E") == 0) {
            lc_msg_t m;
            memset(&m, 0, sizeof m);
            m.type = (uint8_t)num();
            uint16_t seq = (uint16_t)num();
            int n = parse(&m) ? -1 : lc_frame_encode(&m, seq, out);
            if (n < 0) printf("ERR encode");
            else puthex(out, (size_t)n);
        } else if (strcmp(cmd, "D") == 0) {
            char *h = tok();
            int n = h ? unhex(h, buf, sizeof buf) : -1;
            lc_deframer_t d;
            lc_frame_t f;
            int got = 0;
            lc_deframer_init(&d);
            for (int i = 0; i < n && !got; i++) got = lc_deframer_feed(&d, buf[i], &f);
            if (!got) {
                printf("ERR cobs=%u crc=%u length=%u version=%u type=%u overflow=%u", d.stats.cobs_errors,
                       d.stats.crc_errors, d.stats.length_errors, d.stats.version_errors, d.stats.unknown_types,
                       d.stats.overflows);
            } else {
                print(&f);
                int w = lc_frame_encode(&f.msg, f.seq, out);
                printf(" ");
                puthex(out, (size_t)(w < 0 ? 0 : w));
            }
        } else if (strcmp(cmd, "C") == 0) {
            char *h = tok();
            int n = h ? unhex(h, buf, sizeof buf) : 0;
            printf("%04x", lc_crc16(buf, (size_t)(n < 0 ? 0 : n), LC_CRC16_INIT));
        } else if (strcmp(cmd, "S") == 0 || strcmp(cmd, "U") == 0) {
            char *h = tok();
            int n = h ? unhex(h, buf, sizeof buf) : 0;
            if (n < 0) n = 0;
            if (cmd[0] == 'S') puthex(out, lc_cobs_encode(buf, (size_t)n, out, sizeof out));
            else {
                int k = lc_cobs_decode(buf, (size_t)n, out, sizeof out);
                if (k < 0) printf("ERR");
                else puthex(out, (size_t)k);
            }
        } else {
            printf("ERR unknown command %s", cmd);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
