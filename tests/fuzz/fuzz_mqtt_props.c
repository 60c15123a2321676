/* fuzz_mqtt_props.c: one MQTT 5 property block on its own (core/mqtt/props.c).
 *
 * Input: one context byte, then a property block as it sits in a packet (variable byte
 * integer length, then the properties).
 *   ctx & 0x0F   the packet the block belongs to (cx_pctx: CONNECT, will, CONNACK,
 *                PUBLISH from a client or a server, each ack, SUBSCRIBE, ..., AUTH)
 *   ctx & 0x10   decode into a capped arena (64 + 16 * (ctx >> 5) bytes) so the
 *                out-of-memory path runs
 *
 * Properties are reached through the packet decoder too, but there every property block
 * sits behind a packet header that has to be right first; here the fuzzer spends all its
 * effort on the block. cx_mqtt_props_read is the codec's internal entry point
 * (codec_internal.h), which tests may use.
 *
 * The block (length prefix included) is copied into a heap block of exactly its size, so
 * reading past it is an ASan error; bytes after the block are ignored. What decodes must pass
 * fz_check_props, re-encode with cx_mqtt_props_size/cx_mqtt_props_encode to a block that
 * decodes to the same properties, and re-encode again to the same bytes. */
#include <string.h>

#include "fuzz.h"
#include "mqtt_check.h"
#include "util/alloc.h"
#include "util/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* Encodes p (masked to ctx) as a whole block, length prefix included. */
static void encode_block(cx_buf_t *b, const cx_mqtt_props_t *p, cx_pctx ctx)
{
    uint64_t mask = fz_pctx_allowed(ctx);
    size_t body = cx_mqtt_props_body_len(p, mask);
    FUZZ_CHECK(body != SIZE_MAX);
    size_t size = cx_mqtt_props_size(p, mask);
    FUZZ_CHECK(size == cx_mqtt_varint_size((uint32_t)body) + body);
    uint8_t len[4];
    size_t k = cx_mqtt_varint_write(len, (uint32_t)body);
    FUZZ_CHECK(cx_buf_append(b, len, k) == CX_OK);
    FUZZ_CHECK(cx_mqtt_props_encode(b, p, mask) == CX_OK);
    FUZZ_CHECK(cx_buf_used(b) == size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    cx_pctx ctx = (cx_pctx)((sel & 0x0F) % CX_PCTX_COUNT);
    bool capped = (sel & 0x10) != 0;
    data++;
    size--;

    /* Where the block ends, if the prefix can be read: the copy ends there. A prefix that
     * cannot be read or claims more than there is goes to the decoder whole. */
    uint32_t plen = 0;
    size_t k = cx_varint_get(data, size, &plen);
    size_t n = size;
    if (k && plen <= size - k)
        n = k + plen;

    size_t heap_before = cx_alloc_current();
    cx_arena_t arena, spare;
    cx_arena_init(&arena, capped ? 64 + 16 * (size_t)(sel >> 5) : 0);
    cx_arena_init(&spare, 0);
    uint8_t *c = fz_dup(data, n);

    cx_mqtt_props_t p;
    memset(&p, 0xA5, sizeof p);
    cx_mqtt_props_clear(&p);
    cx_mqtt_error_t err = {0, NULL};
    cx_rd_t r = {c, c + n};
    int rc = cx_mqtt_props_read(&r, ctx, &arena, &p, &err);
    if (rc == CX_OK) {
        FUZZ_CHECK(r.p == c + n); /* consumed exactly the block */
        fz_check_props(&p, ctx, c, c + n);

        cx_buf_t b1, b2;
        cx_buf_init(&b1, 0);
        cx_buf_init(&b2, 0);
        encode_block(&b1, &p, ctx);
        size_t m = cx_buf_used(&b1);
        /* Minimal lengths, no duplicates added: never longer than what was read. */
        FUZZ_CHECK(m <= n);
        uint8_t *c2 = fz_dup(cx_buf_head(&b1), m);
        cx_mqtt_props_t q;
        memset(&q, 0x5A, sizeof q);
        cx_mqtt_props_clear(&q);
        cx_rd_t r2 = {c2, c2 + m};
        FUZZ_CHECK(cx_mqtt_props_read(&r2, ctx, &spare, &q, &err) == CX_OK);
        FUZZ_CHECK(r2.p == c2 + m);
        fz_check_props(&q, ctx, c2, c2 + m);
        FUZZ_CHECK(fz_props_equal(&p, &q));
        encode_block(&b2, &q, ctx);
        FUZZ_CHECK(cx_buf_used(&b2) == m && memcmp(cx_buf_head(&b2), c2, m) == 0);
        /* Masks: nothing outside the mask is written, and an empty mask writes nothing. */
        cx_buf_reset(&b2);
        FUZZ_CHECK(cx_mqtt_props_encode(&b2, &p, 0) == CX_OK && cx_buf_used(&b2) == 0);
        FUZZ_CHECK(cx_mqtt_props_size(&p, 0) == 1);
        free(c2);
        cx_buf_free(&b1);
        cx_buf_free(&b2);
    } else if (rc == CX_EPROTO) {
        FUZZ_CHECK(err.msg != NULL && *err.msg != '\0');
        FUZZ_CHECK(err.rc == CX_RC_MALFORMED_PACKET || err.rc == CX_RC_PROTOCOL_ERROR ||
                   err.rc == CX_RC_TOPIC_ALIAS_INVALID);
    } else {
        FUZZ_CHECK(rc == CX_ENOMEM && capped && err.rc == CX_RC_IMPL_SPECIFIC && err.msg);
    }

    free(c);
    cx_arena_free(&arena);
    cx_arena_free(&spare);
    FUZZ_CHECK(cx_alloc_current() == heap_before);
    return 0;
}
