/* COBS framing (docs/FIRMWARE.md "Framing"): no 0x00 inside a frame, 0x00 ends it. Portable C99. */
#ifndef LC_COBS_H
#define LC_COBS_H
#include <stddef.h>
#include <stdint.h>

/* Encode n bytes of src into dst (capacity cap); no delimiter is written. Returns the encoded
 * length, or 0 if cap is too small (needs n + n/254 + 1). */
size_t lc_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

/* Decode one block (delimiter removed) into dst. Returns the decoded length, or -1 if malformed
 * or dst is too small. */
int lc_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

#endif
