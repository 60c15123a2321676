/* fuzz_mqtt_decode.c: the MQTT codec on a byte stream, as a connection delivers it.
 *
 * Input: one mode byte, then the stream.
 *   mode & 3    protocol version: 0 = 3.1, 1 = 3.1.1, 2 = 5, 3 = the broker's view of a
 *               new connection (below)
 *   mode & 4    the stream comes from a server (CONNACK, SUBACK... as a bridge reads them);
 *               else from a client
 *   mode & 8    decode into a capped arena of 64 + 16 * (mode >> 4) bytes, so the
 *               out-of-memory paths run; else into an unlimited one
 *
 * The stream is cut into packets with cx_mqtt_frame exactly as core/broker/client.c's
 * on_read does, each packet is copied into a heap block of its own size (so ASan sees a
 * read past the packet, which in the stream would land in the next one) and decoded. A
 * packet that does not decode does not stop the stream in modes 0-2: its frame is known, and
 * decoding on finds more per input. Mode 3 is the broker: the first byte must be CONNECT's,
 * the first packet is decoded with version 5 (CONNECT carries its own), the rest with the
 * CONNECT's level, and the first error ends the connection.
 *
 * Every accepted packet goes through mqtt_check.c: validators agree with the decoder,
 * slices stay inside the packet, and encode/decode round-trips to the same packet and the
 * same bytes. A truncated tail must be refused as malformed. No memory may stay allocated
 * through cx_alloc after the input is done. */
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

/* A packet the stream does not hold completely: the codec must call it malformed. */
static void decode_truncated(const uint8_t *b, size_t n, cx_mqtt_version ver, bool is_server,
                             cx_arena_t *arena)
{
    uint8_t *c = fz_dup(b, n);
    cx_mqtt_packet_t p;
    cx_mqtt_error_t err = {0, NULL};
    int rc = cx_mqtt_decode(c, n, ver, is_server, arena, &p, &err);
    FUZZ_CHECK(rc == CX_EPROTO && err.rc == CX_RC_MALFORMED_PACKET && err.msg && *err.msg);
    free(c);
}

/* Decodes one whole packet; returns cx_mqtt_decode's result. *level gets a CONNECT's
 * protocol level. */
static int decode_one(const uint8_t *b, size_t n, cx_mqtt_version ver, bool is_server,
                      cx_arena_t *arena, cx_arena_t *spare, bool capped, uint8_t *level)
{
    uint8_t *c = fz_dup(b, n);
    cx_mqtt_packet_t p;
    /* A fill the decoder must overwrite (see fz_check_roundtrip for the other one). */
    memset(&p, 0xA5, sizeof p);
    cx_mqtt_error_t err = {0, NULL};
    int rc = cx_mqtt_decode(c, n, ver, is_server, arena, &p, &err);
    if (rc == CX_OK) {
        fz_check_packet(&p, c, n, p.type == CX_MQTT_CONNECT
                                       ? (cx_mqtt_version)p.u.connect.protocol_level
                                       : ver,
                        is_server);
        if (p.type == CX_MQTT_CONNECT)
            *level = p.u.connect.protocol_level;
        fz_check_roundtrip(&p, n, ver, is_server, spare);
    } else if (rc == CX_EPROTO) {
        FUZZ_CHECK(err.msg != NULL && *err.msg != '\0');
        FUZZ_CHECK(err.rc >= 0x80);
        FUZZ_CHECK(cx_mqtt_rc_name(err.rc) != NULL);
        /* The broker answers an unsupported version in the client's version: the codec
         * promises the level and name are filled in then (codec.h). */
        if (err.rc == CX_RC_UNSUPPORTED_PROTOCOL_VERSION) {
            FUZZ_CHECK(p.type == CX_MQTT_CONNECT);
            FUZZ_CHECK(p.u.connect.protocol_level <= 0x7F);
            const cx_str_t *name = &p.u.connect.protocol_name;
            FUZZ_CHECK(name->len == 0 ||
                       (name->p >= c && name->len <= (size_t)(c + n - name->p)));
        }
    } else {
        /* Only a capped arena runs out. */
        FUZZ_CHECK(rc == CX_ENOMEM && capped);
        FUZZ_CHECK(err.rc == CX_RC_IMPL_SPECIFIC && err.msg != NULL);
    }
    free(c);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;

    size_t heap_before = cx_alloc_current();
    bool broker = (mode & 3) == 3;
    cx_mqtt_version ver = broker ? CX_MQTT_V5 : (cx_mqtt_version)(CX_MQTT_V31 + (mode & 3));
    bool is_server = !broker && (mode & 4);
    bool capped = (mode & 8) != 0;
    cx_arena_t arena, spare;
    cx_arena_init(&arena, capped ? 64 + 16 * (size_t)(mode >> 4) : 0);
    cx_arena_init(&spare, 0);

    size_t off = 0;
    bool first = true;
    while (off < size) {
        const uint8_t *b = data + off;
        size_t avail = size - off;
        /* client.c: a connection must start with CONNECT (flags 0) [MQTT-3.1.0-1]. */
        if (broker && first && b[0] != (CX_MQTT_CONNECT << 4))
            break;
        size_t hl = 0;
        uint32_t rl = 0;
        cx_mqtt_error_t err = {0, NULL};
        int rc = cx_mqtt_frame(b, avail, &hl, &rl, &err);
        if (rc == CX_EAGAIN) {
            FUZZ_CHECK(avail < 5);
            decode_truncated(b, avail, ver, is_server, &arena);
            break;
        }
        if (rc != CX_OK) {
            FUZZ_CHECK(rc == CX_EPROTO && err.rc == CX_RC_MALFORMED_PACKET && err.msg);
            decode_truncated(b, avail, ver, is_server, &arena); /* same verdict */
            break;
        }
        FUZZ_CHECK(hl >= 2 && hl <= 5 && hl <= avail && rl <= CX_MQTT_MAX_REMAINING);
        size_t total = hl + (size_t)rl;
        if (total > avail) {
            decode_truncated(b, avail, ver, is_server, &arena);
            break;
        }
        uint8_t level = 0;
        rc = decode_one(b, total, ver, is_server, &arena, &spare, capped, &level);
        cx_arena_reset(&arena);
        cx_arena_reset(&spare);
        off += total;
        if (broker) {
            if (rc != CX_OK)
                break; /* the broker disconnects */
            if (first)
                ver = (cx_mqtt_version)level;
        }
        first = false;
    }

    cx_arena_free(&arena);
    cx_arena_free(&spare);
    FUZZ_CHECK(cx_alloc_current() == heap_before);
    return 0;
}
