/* latentcast MCU link, protocol version 1: message structs, payload and frame codec.
 * The byte layout is docs/FIRMWARE.md; firmware_bridge/protocol.py is the Python twin and the tests
 * check both against tests/data/firmware_v1_vectors.json. Portable C99, no allocation. */
#ifndef LC_MESSAGES_H
#define LC_MESSAGES_H
#include <stddef.h>
#include <stdint.h>

#define LC_VERSION 1
#define LC_HEADER_SIZE 6
#define LC_CRC_SIZE 2
#define LC_MAX_PAYLOAD 240
#define LC_MAX_RAW (LC_HEADER_SIZE + LC_MAX_PAYLOAD + LC_CRC_SIZE)
#define LC_MAX_WIRE (LC_MAX_RAW + 2) /* one COBS code byte (raw < 254) + the 0x00 delimiter */
#define LC_MAX_CHANNELS 32
#define LC_MAX_NAME 32
#define LC_MAX_TEXT 64

enum lc_type {
    LC_HELLO = 0x01,
    LC_HEARTBEAT = 0x02,
    LC_TIME_REQUEST = 0x03,
    LC_TIME_REPLY = 0x04,
    LC_ACTUATORS = 0x05,
    LC_LED = 0x06,
    LC_BUTTON = 0x07,
    LC_IMU = 0x08,
    LC_FAULT = 0x09,
    LC_CONFIG = 0x0A,
    LC_ACK = 0x0F,
};

enum lc_state { LC_STATE_OK = 0, LC_STATE_SAFE = 1, LC_STATE_FAULTED = 2 };
enum lc_ack_status { LC_ACK_OK = 0, LC_ACK_UNSUPPORTED = 1, LC_ACK_BAD_PAYLOAD = 2 };

typedef struct {
    uint8_t role, channels, leds, buttons, flags;
    uint16_t max_rate_hz, firmware_version;
    uint8_t name_len;
    char name[LC_MAX_NAME];
} lc_hello_t;
typedef struct { uint32_t uptime_ms; uint8_t state; uint16_t rx_errors; } lc_heartbeat_t;
typedef struct { uint64_t t1_us; } lc_time_request_t;
typedef struct { uint64_t t1_us, t2_us, t3_us; } lc_time_reply_t;
typedef struct { uint64_t capture_us; uint8_t count; uint16_t targets[LC_MAX_CHANNELS]; } lc_actuators_t;
typedef struct { uint8_t index, mode, r, g, b; uint16_t period_ms; } lc_led_t;
typedef struct { uint8_t button, event; uint32_t mcu_ms; } lc_button_t;
typedef struct { uint64_t t_us; int16_t quat[4], accel_mg[3], gyro_mrad_s[3]; } lc_imu_t;
typedef struct { uint16_t code; uint8_t severity, channel, text_len; char text[LC_MAX_TEXT]; } lc_fault_t;
typedef struct { uint16_t watchdog_ms; uint8_t count; uint16_t safe_targets[LC_MAX_CHANNELS]; } lc_config_t;
typedef struct { uint8_t acked_type; uint16_t acked_seq; uint8_t status; } lc_ack_t;

typedef struct {
    uint8_t type;
    union {
        lc_hello_t hello;
        lc_heartbeat_t heartbeat;
        lc_time_request_t time_request;
        lc_time_reply_t time_reply;
        lc_actuators_t actuators;
        lc_led_t led;
        lc_button_t button;
        lc_imu_t imu;
        lc_fault_t fault;
        lc_config_t config;
        lc_ack_t ack;
    } u;
} lc_msg_t;

typedef struct {
    uint8_t version, type;
    uint16_t seq;
    lc_msg_t msg;
} lc_frame_t;

/* Errors a decoder reports; the deframer counts each. */
enum lc_err { LC_OK = 0, LC_ERR_COBS = -1, LC_ERR_CRC = -2, LC_ERR_LENGTH = -3, LC_ERR_VERSION = -4, LC_ERR_TYPE = -5 };

int lc_is_reliable(uint8_t type);

/* Payload only. pack returns its length (or -1: too many channels); unpack returns LC_OK or an lc_err. */
int lc_payload_pack(const lc_msg_t *m, uint8_t *out);
int lc_payload_unpack(uint8_t type, const uint8_t *p, size_t n, lc_msg_t *m);

/* Header + payload + CRC (before COBS). Returns its length or -1. */
int lc_raw_encode(const lc_msg_t *m, uint16_t seq, uint8_t *out);
int lc_raw_decode(const uint8_t *raw, size_t n, lc_frame_t *f);

/* COBS(raw) + 0x00, ready for the UART. out needs LC_MAX_WIRE bytes. Returns its length or -1. */
int lc_frame_encode(const lc_msg_t *m, uint16_t seq, uint8_t *out);

typedef struct {
    uint32_t frames, cobs_errors, crc_errors, length_errors, version_errors, unknown_types, overflows;
} lc_rx_stats_t;

/* Byte-at-a-time receiver (fits a UART interrupt): resynchronises at every 0x00. */
typedef struct {
    uint8_t buf[LC_MAX_WIRE];
    size_t len;
    int skipping;
    lc_rx_stats_t stats;
} lc_deframer_t;

void lc_deframer_init(lc_deframer_t *d);
/* Returns 1 when `byte` completed a valid frame (written to *f), else 0. */
int lc_deframer_feed(lc_deframer_t *d, uint8_t byte, lc_frame_t *f);
uint32_t lc_rx_errors(const lc_rx_stats_t *s);

#endif
