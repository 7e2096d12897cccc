#include "lc_crc16.h"

/* Bitwise: 16 bytes of code instead of a 512-byte table; fast enough for 250-byte frames on an RP2040. */
uint16_t lc_crc16(const uint8_t *data, size_t n, uint16_t crc) {
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)data[i] << 8;
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}
