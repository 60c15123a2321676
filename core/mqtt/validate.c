/* validate.c: UTF-8 strings, topic names, topic filters and shared-subscription syntax.
 *
 * These run on every PUBLISH topic, so the common case (short ASCII) is checked eight bytes
 * at a time with word tricks; only bytes >= 0x80 (or a suspicious word) fall back to the
 * byte-wise path. '+', '#', '/' and NUL are ASCII and never occur inside a multi-byte UTF-8
 * sequence, so byte-wise scans for them are correct on UTF-8 text. */
#include <string.h>

#include "codec_internal.h"

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Non-zero iff some byte of v is zero (exact as a yes/no answer). */
static inline uint64_t has_zero(uint64_t v)
{
    return (v - ONES) & ~v & HIGHS;
}

static inline uint64_t has_byte(uint64_t v, uint8_t c)
{
    return has_zero(v ^ (ONES * c));
}

/* Length of the well-formed multi-byte sequence at p[0..n) (p[0] >= 0x80), or 0.
 * Unicode Table 3-7: no overlongs (C0, C1, E0 80..9F, F0 80..8F), no surrogates
 * (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..FF). [MQTT-1.5.4-1] */
static size_t utf8_multi(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0xC2)
        return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) {
        if (n < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3)
            return 0;
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80;
        uint8_t hi = c == 0xED ? 0x9F : 0xBF;
        if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4)
            return 0;
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80;
        uint8_t hi = c == 0xF4 ? 0x8F : 0xBF;
        if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* Non-zero if the 8 bytes in v are not all plain ASCII acceptable in a string: a byte
 * >= 0x80, a NUL, or with `no_wild` a '+' or '#'. '#' (0x23) and '+' (0x2B) differ only in
 * bit 3, so one test finds both. */
static inline uint64_t word_needs_check(uint64_t v, bool no_wild)
{
    uint64_t bad = (v & HIGHS) | has_zero(v);
    if (no_wild)
        bad |= has_byte(v | (ONES * 0x08), '+');
    return bad;
}

/* Valid UTF-8 without U+0000; with `no_wild`, also without '+' and '#'. */
static inline bool utf8_scan(const uint8_t *p, size_t n, bool no_wild)
{
    size_t i = 0;
    for (;;) {
        while (n - i >= 8 && !word_needs_check(load64(p + i), no_wild))
            i += 8;
        if (i == n)
            return true;
        /* Fewer than 8 bytes left: check the last 8 bytes of the string at once. An
         * all-ASCII word is valid at any alignment; otherwise fall through to the byte path,
         * which resumes at i, always a character boundary. */
        if (n - i < 8 && n >= 8 && !word_needs_check(load64(p + n - 8), no_wild))
            return true;
        uint8_t c = p[i];
        if (c < 0x80) {
            /* U+0000 is forbidden [MQTT-1.5.4-2]. */
            if (c == 0 || (no_wild && (c == '+' || c == '#')))
                return false;
            i++;
            continue;
        }
        size_t k = utf8_multi(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
}

bool cx_mqtt_utf8_is_valid(cx_str_t s)
{
    return utf8_scan(s.p, s.len, false);
}

/* [MQTT-4.7.3-1] at least one character; [MQTT-4.7.1-1] no wildcards in a topic name. */
bool cx_mqtt_topic_name_is_valid(cx_str_t s)
{
    return s.len > 0 && utf8_scan(s.p, s.len, true);
}

/* Filter syntax without the shared-subscription layer. */
static cx_filter_problem filter_problem(const uint8_t *p, size_t n)
{
    if (n == 0)
        return CX_FILTER_EMPTY;
    if (!utf8_scan(p, n, false))
        return CX_FILTER_UTF8;
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t v = load64(p + i);
            if (!has_byte(v | (ONES * 0x08), '+')) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        if (c == '+') {
            /* [MQTT-4.7.1-2] '+' must occupy an entire level. */
            if ((i > 0 && p[i - 1] != '/') || (i + 1 < n && p[i + 1] != '/'))
                return CX_FILTER_PLUS;
        } else if (c == '#') {
            /* [MQTT-4.7.1-1] '#' alone or after '/', and last. */
            if ((i > 0 && p[i - 1] != '/') || i + 1 != n)
                return CX_FILTER_HASH;
        }
        i++;
    }
    return CX_FILTER_OK;
}

bool cx_mqtt_topic_filter_is_valid(cx_str_t s)
{
    return filter_problem(s.p, s.len) == CX_FILTER_OK;
}

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof SHARE_PREFIX - 1)

/* MQTT 5 §4.8.2: "$share/{ShareName}/{filter}". ShareName is at least one character and has
 * no '/', '+' or '#' [MQTT-4.8.2-1], [MQTT-4.8.2-2]; a valid filter follows the '/'. */
static cx_filter_problem shared_split(cx_str_t f, cx_str_t *group, cx_str_t *real)
{
    const uint8_t *g = f.p + SHARE_PREFIX_LEN;
    size_t rest = f.len - SHARE_PREFIX_LEN;
    const uint8_t *slash = rest ? memchr(g, '/', rest) : NULL;
    if (!slash || slash == g)
        return CX_FILTER_SHARE_NAME;
    size_t glen = (size_t)(slash - g);
    for (size_t i = 0; i < glen; i++)
        if (g[i] == '+' || g[i] == '#')
            return CX_FILTER_SHARE_WILD;
    if (!utf8_scan(g, glen, false))
        return CX_FILTER_UTF8;
    size_t rlen = rest - glen - 1;
    if (rlen == 0)
        return CX_FILTER_SHARE_EMPTY;
    cx_filter_problem pb = filter_problem(slash + 1, rlen);
    if (pb != CX_FILTER_OK)
        return pb;
    if (group)
        *group = (cx_str_t){g, glen};
    if (real)
        *real = (cx_str_t){slash + 1, rlen};
    return CX_FILTER_OK;
}

static inline bool is_shared(cx_str_t f)
{
    return f.len >= SHARE_PREFIX_LEN && memcmp(f.p, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0;
}

/* Returns -1 (not CX_EPROTO's value) for a malformed shared filter, as codec.h states it;
 * callers test < 0. On 0, *real_filter is the filter itself and *group is empty. */
int cx_mqtt_shared_parse(cx_str_t filter, cx_str_t *group, cx_str_t *real_filter)
{
    if (!is_shared(filter)) {
        if (group)
            *group = CX_STR_NULL;
        if (real_filter)
            *real_filter = filter;
        return 0;
    }
    return shared_split(filter, group, real_filter) == CX_FILTER_OK ? 1 : -1;
}

/* Shared subscriptions are recognised in every protocol version: a 3.1.1 client
 * subscribing "$share/g/t" gets a shared subscription (as Mosquitto does), so a malformed
 * "$share/..." filter is rejected in 3.x too rather than silently becoming a normal one. */
cx_filter_problem cx_mqtt_filter_check(cx_str_t filter, bool *shared)
{
    if (is_shared(filter)) {
        *shared = true;
        return shared_split(filter, NULL, NULL);
    }
    *shared = false;
    return filter_problem(filter.p, filter.len);
}
