#include "lc_cobs.h"

size_t lc_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
    size_t out = 1, code_at = 0;
    uint8_t code = 1;
    if (cap < n + n / 254 + 1) return 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
            continue;
        }
        dst[out++] = src[i];
        if (++code == 0xFF) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
        }
    }
    dst[code_at] = code;
    return out;
}

int lc_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
    size_t i = 0, out = 0;
    while (i < n) {
        uint8_t code = src[i];
        if (code == 0 || i + code > n) return -1;
        for (size_t k = i + 1; k < i + code; k++) {
            if (src[k] == 0 || out >= cap) return -1;
            dst[out++] = src[k];
        }
        i += code;
        if (code < 0xFF && i < n) {
            if (out >= cap) return -1;
            dst[out++] = 0;
        }
    }
    return (int)out;
}
