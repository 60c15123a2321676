/* persist_rec.h: the bytes of each persistence record (docs/persistence.md, "Records").
 *
 * Encoders write into a cx_penc_t (a small stack buffer that spills to the heap); decoders
 * read from a slice and check every length first: records may come from a damaged file
 * that passed its checksum by chance, or from a third-party store plugin. Integers are
 * little endian. Every value starts with a format byte (1) so that a later culex can
 * change a layout and still read the old one. */
#ifndef CX_BROKER_PERSIST_REC_H
#define CX_BROKER_PERSIST_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/msg.h"
#include "broker/subtree.h"
#include "util/str.h"

typedef struct cx_penc {
    uint8_t *p;
    size_t len, cap;
    bool oom;
    uint8_t local[256];
} cx_penc_t;

void cx_penc_init(cx_penc_t *e);
void cx_penc_free(cx_penc_t *e);
static inline cx_str_t cx_penc_str(const cx_penc_t *e)
{
    return (cx_str_t){e->p, e->len};
}

/* Keys. */
void cx_prec_key_gen(cx_penc_t *e, uint64_t gen);                  /* prefix of the next three */
void cx_prec_key_sub(cx_penc_t *e, uint64_t gen, cx_str_t group, cx_str_t filter);
void cx_prec_key_queue(cx_penc_t *e, uint64_t gen, uint64_t msg_id);
void cx_prec_key_qos2(cx_penc_t *e, uint64_t gen, uint16_t pid);
void cx_prec_key_msg(cx_penc_t *e, uint64_t msg_id);

/* A message (RETAIN and MSG values). now_mono/now_wall turn the monotonic expiry deadline
 * into a wall-clock one that survives a restart. */
void cx_prec_msg(cx_penc_t *e, const cx_msg_t *m, int64_t now_mono, int64_t now_wall);
/* Decodes a message value into a new message (one reference). Returns CX_OK, CX_EFORMAT
 * (damaged), CX_ENOMEM, or CX_ENOTFOUND when it has expired meanwhile (*out NULL). */
int cx_prec_msg_decode(cx_str_t val, int64_t now_mono, int64_t now_wall, cx_msg_t **out);

typedef struct cx_prec_session {
    uint8_t protocol;
    uint32_t expiry;
    uint64_t gen;
    int64_t disconnected_wall; /* ms since the epoch; 0 = connected when recorded */
} cx_prec_session_t;
void cx_prec_session(cx_penc_t *e, const cx_prec_session_t *s);
int cx_prec_session_decode(cx_str_t val, cx_prec_session_t *out);

void cx_prec_sub(cx_penc_t *e, const cx_sub_opts_t *o);
int cx_prec_sub_decode(cx_str_t val, cx_sub_opts_t *out);
/* Splits a SUB key. */
int cx_prec_sub_key_decode(cx_str_t key, uint64_t *gen, cx_str_t *group, cx_str_t *filter);

typedef struct cx_prec_queue {
    uint8_t qos;
    bool retain;
    uint8_t state;       /* CX_QE_* */
    uint16_t packet_id;
    uint64_t order;
    uint32_t share_hash;
    uint16_t nsub;
    const uint32_t *sub_ids; /* encode: nsub ids; decode: see cx_prec_queue_sub_id */
    cx_str_t raw_ids;        /* decode: the ids' bytes */
} cx_prec_queue_t;
void cx_prec_queue(cx_penc_t *e, const cx_prec_queue_t *q);
int cx_prec_queue_decode(cx_str_t val, cx_prec_queue_t *out);
uint32_t cx_prec_queue_sub_id(const cx_prec_queue_t *q, size_t i);

/* The generation at the start of a SUB/QUEUE/QOS2IN key, or of a message id key. */
int cx_prec_key_u64(cx_str_t key, uint64_t *out);
/* The second field of QUEUE (message id) and QOS2IN (packet id) keys. */
int cx_prec_key_queue_decode(cx_str_t key, uint64_t *gen, uint64_t *msg_id);
int cx_prec_key_qos2_decode(cx_str_t key, uint64_t *gen, uint16_t *pid);

#endif
