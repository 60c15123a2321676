/* mqtt_check.h: the properties fuzz_mqtt_decode and fuzz_mqtt_props check on whatever the
 * codec accepts.
 *
 * What the codec promises (core/mqtt/codec.h, README.md) and these helpers hold it to:
 *  - decoded slices point into the packet, never outside it;
 *  - what decode accepts passes the validators (UTF-8, topic names, topic filters, $share
 *    syntax) and the one-packet rules of the spec (QoS, packet identifiers, property sets);
 *  - encode(decode(x)) succeeds, decodes again to the same packet, and encoding that gives
 *    the same bytes: decode and encode are inverse on everything decode accepts.
 * Each failure aborts through FUZZ_CHECK. */
#ifndef CX_FUZZ_MQTT_CHECK_H
#define CX_FUZZ_MQTT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/codec.h"
#include "mqtt/codec_internal.h"

/* The properties allowed in a property block of context ctx (mirrors props.c's table:
 * the codec keeps it static). */
uint64_t fz_pctx_allowed(cx_pctx ctx);

/* The property context of the main property block of a decoded packet. */
cx_pctx fz_packet_pctx(const cx_mqtt_packet_t *p, bool is_server);

/* Checks a decoded property set: every present field in range and well formed, present
 * a subset of fz_pctx_allowed(ctx), arrays consistent with their bits, and every slice
 * inside [lo, hi). */
void fz_check_props(const cx_mqtt_props_t *p, cx_pctx ctx, const uint8_t *lo,
                    const uint8_t *hi);

/* Field-by-field equality of two property sets (only fields whose present bit is set). */
bool fz_props_equal(const cx_mqtt_props_t *a, const cx_mqtt_props_t *b);

/* Checks a packet that cx_mqtt_decode accepted from pkt[0..len) for `version` (ignored
 * for CONNECT) sent by a server or a client. */
void fz_check_packet(const cx_mqtt_packet_t *p, const uint8_t *pkt, size_t len,
                     cx_mqtt_version version, bool is_server);

/* Encodes any decoded packet back (the inverse of cx_mqtt_decode); `version` is the
 * connection's, CONNECT uses its own level. */
int fz_encode_any(cx_buf_t *b, cx_mqtt_version version, const cx_mqtt_packet_t *p);

/* Meaningful-field equality of two decoded packets. */
bool fz_packet_equal(const cx_mqtt_packet_t *a, const cx_mqtt_packet_t *b);

/* Re-encodes a decoded packet, decodes the result (arena: any unlimited arena) and checks
 * that it is the same packet and that encoding it again gives the same bytes. orig_len is
 * the length of the bytes p was decoded from: the encoder writes minimal lengths, so its
 * output is never longer. */
void fz_check_roundtrip(const cx_mqtt_packet_t *p, size_t orig_len, cx_mqtt_version version,
                        bool is_server, cx_arena_t *arena);

/* An exactly-sized heap copy of p[0..n) (one byte for n == 0), so that ASan catches any
 * read past the end of what the codec was given. Free with free(). */
uint8_t *fz_dup(const uint8_t *p, size_t n);

#endif
