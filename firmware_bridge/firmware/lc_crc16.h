/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0; check("123456789") = 0x29B1. */
#ifndef LC_CRC16_H
#define LC_CRC16_H
#include <stddef.h>
#include <stdint.h>

#define LC_CRC16_INIT 0xFFFFu
uint16_t lc_crc16(const uint8_t *data, size_t n, uint16_t crc);

#endif
