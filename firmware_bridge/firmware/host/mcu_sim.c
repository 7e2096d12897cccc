/* MCU simulator: the reference firmware (lc_link.c, lc_messages.c) on a host "board" whose UART is
 * a pseudo-terminal. The host side opens the pty's slave through a stable symlink (--link PATH),
 * exactly as it would open /dev/ttyACM0, so every test runs the real protocol over a real tty.
 *
 *   mcu_sim --link /tmp/x/ttyMCU [--channels 6] [--leds 2] [--buttons 2] [--imu-hz 0] [--clock-offset-us 0]
 *
 * stdout: one JSON object per line: ready, targets (each applied actuator frame), led, config,
 * unplugged, stats. stdin: one command per line:
 *   unplug MS        close the pty and remove the link; after MS ms a new pty appears at the link
 *   hb on|off        send heartbeats or stop (the host's watchdog test)
 *   button B E       queue a reliable BUTTON event (E: 0 release, 1 press, 2 long press)
 *   fault CODE TEXT  queue a reliable FAULT
 *   flood N          send N IMU samples back to back, as fast as the host reads them
 *   garbage N        write N random non-zero bytes, then carry on
 *   quiet on|off     stop/start printing every applied actuator frame (the benchmark's flood)
 *   stats            print counters;   quit */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../lc_link.h"

typedef struct {
    int master, slave;
    const char *link;
    uint64_t written, dropped;
    int quiet;
    uint16_t last[LC_MAX_CHANNELS]; /* the newest applied targets (also in quiet mode) */
    uint8_t last_count;
    int flow_control; /* 1 during `flood`: wait for the tty instead of dropping (as fast as the host reads) */
} sim_board_t;

static uint64_t clock_offset_us; /* --clock-offset-us: the MCU's clock is not the host's */

static uint64_t now_us(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u + clock_offset_us;
}

static void uart_write(void *ctx, const uint8_t *data, size_t n) {
    sim_board_t *b = ctx;
    size_t done = 0;
    while (b->master >= 0 && done < n) {
        ssize_t w = write(b->master, data + done, n - done);
        if (w > 0) { done += (size_t)w; continue; }
        if (!b->flow_control) break; /* normally a full UART FIFO drops, like real hardware */
        struct pollfd out = {.fd = b->master, .events = POLLOUT};
        if (poll(&out, 1, 1000) <= 0) break; /* the host stopped reading for 1 s: drop the rest */
    }
    b->written += done;
    b->dropped += n - done;
}

static void apply_targets(void *ctx, const uint16_t *t, uint8_t n, uint64_t capture_us, int safe) {
    sim_board_t *b = ctx;
    b->last_count = n;
    memcpy(b->last, t, (size_t)n * sizeof t[0]);
    if (b->quiet && !safe) return;
    printf("{\"ev\": \"targets\", \"safe\": %d, \"capture_us\": %llu, \"t_us\": %llu, \"targets\": [", safe,
           (unsigned long long)capture_us, (unsigned long long)now_us(NULL));
    for (int i = 0; i < n; i++) printf(i ? ", %u" : "%u", t[i]);
    printf("]}\n");
    fflush(stdout);
}

static void set_led(void *ctx, const lc_led_t *l) {
    (void)ctx;
    printf("{\"ev\": \"led\", \"index\": %u, \"mode\": %u, \"rgb\": [%u, %u, %u], \"period_ms\": %u}\n", l->index,
           l->mode, l->r, l->g, l->b, l->period_ms);
    fflush(stdout);
}

static void on_config(void *ctx, const lc_config_t *c) {
    (void)ctx;
    printf("{\"ev\": \"config\", \"watchdog_ms\": %u, \"safe\": [", c->watchdog_ms);
    for (int i = 0; i < c->count; i++) printf(i ? ", %u" : "%u", c->safe_targets[i]);
    printf("]}\n");
    fflush(stdout);
}

static int plug(sim_board_t *b) {
    b->master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (b->master < 0 || grantpt(b->master) || unlockpt(b->master)) return -1;
    const char *name = ptsname(b->master);
    /* Keep the slave open in raw mode: no echo or line editing before the host opens it, and
     * reads on the master never fail with EIO while the host is between reconnects. */
    b->slave = open(name, O_RDWR | O_NOCTTY);
    if (b->slave < 0) return -1;
    struct termios tio;
    tcgetattr(b->slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(b->slave, TCSANOW, &tio);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", b->link);
    unlink(tmp);
    if (symlink(name, tmp) || rename(tmp, b->link)) return -1;
    printf("{\"ev\": \"ready\", \"pty\": \"%s\", \"link\": \"%s\"}\n", name, b->link);
    fflush(stdout);
    return 0;
}

static void unplug(sim_board_t *b) {
    unlink(b->link);
    if (b->master >= 0) close(b->master);
    if (b->slave >= 0) close(b->slave);
    b->master = b->slave = -1;
    printf("{\"ev\": \"unplugged\"}\n");
    fflush(stdout);
}

static void stats(const lc_link_t *l, const sim_board_t *b) {
    const lc_rx_stats_t *s = &l->rx.stats;
    printf("{\"ev\": \"stats\", \"rx_frames\": %u, \"rx_errors\": %u, \"cobs_errors\": %u, \"crc_errors\": %u, "
           "\"actuator_frames\": %u, \"duplicates\": %u, \"safe_entries\": %u, \"retries\": %u, "
           "\"events_dropped\": %u, \"state\": %u, \"tx_bytes\": %llu, \"tx_dropped_bytes\": %llu, \"last\": [",
           s->frames, lc_rx_errors(s), s->cobs_errors, s->crc_errors, l->actuator_frames, l->duplicates,
           l->safe_entries, l->retries, l->events_dropped, l->state, (unsigned long long)b->written,
           (unsigned long long)b->dropped);
    for (int i = 0; i < b->last_count; i++) printf(i ? ", %u" : "%u", b->last[i]);
    printf("]}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    sim_board_t board = {.master = -1, .slave = -1};
    lc_hello_t caps = {.role = 1, .channels = 6, .leds = 2, .buttons = 2, .max_rate_hz = 1000,
                       .firmware_version = 0x0100};
    memcpy(caps.name, "lc-mcu-sim", 10);
    caps.name_len = 10;
    unsigned imu_hz = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--link")) board.link = argv[i + 1];
        else if (!strcmp(argv[i], "--channels")) caps.channels = (uint8_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--leds")) caps.leds = (uint8_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--buttons")) caps.buttons = (uint8_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--imu-hz")) imu_hz = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clock-offset-us")) clock_offset_us = strtoull(argv[i + 1], NULL, 10);
    }
    if (!board.link || caps.channels > LC_MAX_CHANNELS) {
        fprintf(stderr, "usage: mcu_sim --link PATH [--channels N<=32] [--leds N] [--buttons N] [--imu-hz HZ]\n");
        return 2;
    }
    if (imu_hz) caps.flags |= 0x01;
    if (plug(&board)) { perror("mcu_sim: pty"); return 1; }
    lc_board_t io = {.ctx = &board, .write = uart_write, .now_us = now_us, .apply_targets = apply_targets,
                     .set_led = set_led, .on_config = on_config};
    static lc_link_t link;
    lc_link_init(&link, &io, &caps);
    uint64_t replug_at = 0, next_imu = 0;
    char line[512];
    size_t line_len = 0;
    srand(1);
    for (;;) {
        struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = board.master, .events = POLLIN}};
        poll(fds, board.master >= 0 ? 2 : 1, 1);
        uint64_t t = now_us(NULL);
        if (board.master < 0 && replug_at && t >= replug_at) {
            replug_at = 0;
            if (plug(&board)) { perror("mcu_sim: replug"); return 1; }
        }
        if (board.master >= 0 && (fds[1].revents & POLLIN)) {
            uint8_t buf[4096];
            ssize_t n = read(board.master, buf, sizeof buf);
            if (n > 0) lc_link_rx(&link, buf, (size_t)n);
        }
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char c;
            ssize_t n = read(0, &c, 1);
            if (n <= 0) break; /* stdin closed: the test is done */
            if (c != '\n' && line_len + 1 < sizeof line) { line[line_len++] = c; continue; }
            line[line_len] = 0;
            line_len = 0;
            char arg[256] = "";
            unsigned a = 0, b = 0;
            if (sscanf(line, "unplug %u", &a) == 1) {
                unplug(&board);
                replug_at = now_us(NULL) + (uint64_t)a * 1000u;
            } else if (!strcmp(line, "hb off")) link.heartbeats_enabled = 0;
            else if (!strcmp(line, "hb on")) link.heartbeats_enabled = 1;
            else if (!strcmp(line, "quiet on")) board.quiet = 1;
            else if (!strcmp(line, "quiet off")) board.quiet = 0;
            else if (sscanf(line, "button %u %u", &a, &b) == 2) lc_link_button(&link, (uint8_t)a, (uint8_t)b);
            else if (sscanf(line, "fault %u %255s", &a, arg) == 2) lc_link_fault(&link, (uint16_t)a, 2, 0xFF, arg);
            else if (sscanf(line, "flood %u", &a) == 1) {
                board.flow_control = 1;
                for (unsigned i = 0; i < a; i++) {
                    lc_msg_t m = {.type = LC_IMU};
                    m.u.imu.t_us = now_us(NULL);
                    m.u.imu.quat[0] = 16384;
                    m.u.imu.accel_mg[2] = 1000;
                    m.u.imu.gyro_mrad_s[0] = (int16_t)i;
                    lc_link_send(&link, &m);
                }
                board.flow_control = 0;
                printf("{\"ev\": \"flooded\", \"frames\": %u}\n", a);
                fflush(stdout);
            } else if (sscanf(line, "garbage %u", &a) == 1) {
                uint8_t g[1024];
                if (a > sizeof g) a = sizeof g;
                for (unsigned i = 0; i < a; i++) g[i] = (uint8_t)(1 + rand() % 255);
                uart_write(&board, g, a);
            } else if (!strcmp(line, "stats")) stats(&link, &board);
            else if (!strcmp(line, "quit")) break;
            else { fprintf(stderr, "mcu_sim: unknown command: %s\n", line); }
        }
        if (imu_hz && t >= next_imu && board.master >= 0) {
            lc_msg_t m = {.type = LC_IMU};
            m.u.imu.t_us = t;
            m.u.imu.quat[0] = 16384;
            m.u.imu.accel_mg[2] = 1000;
            lc_link_send(&link, &m);
            next_imu = t + 1000000u / imu_hz;
        }
        lc_link_poll(&link);
    }
    stats(&link, &board);
    if (board.master >= 0) unplug(&board);
    return 0;
}
