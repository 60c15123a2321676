/* client.h: the MQTT protocol state of one connection: decoded packet -> action. */
#ifndef CX_BROKER_CLIENT_H
#define CX_BROKER_CLIENT_H

#include "broker/broker.h"

typedef struct cx_alias_out cx_alias_out_t;

/* CX_CL_AUTH: CONNECT carried an Authentication Method and the exchange goes on with AUTH
 * packets before the CONNACK (MQTT 5 §4.12). */
enum { CX_CL_NEW = 0, CX_CL_CONNECTED, CX_CL_CLOSING, CX_CL_AUTH };

/* What few clients need, allocated on first use (cx_client_rare) and given back when empty
 * (cx_client_rare_trim, after each packet), so that an idle client holds none: the answers
 * of plugin checks for the packet being handled, MQTT 5 enhanced authentication, an
 * assigned client id kept across the replay of its CONNECT, the worker a CONNECT moves to,
 * and MQTT 5 topic aliases once used. */
typedef struct cx_client_rare {
    int *checks;                /* answers to this packet's checks, for its replay */
    uint32_t nchecks, checks_cap, check_idx;
    bool ext_auth_ok;           /* the exchange succeeded: CONNECT goes on without it */
    bool reauthenticating;      /* an AUTH 0x19 exchange is under way */
    uint8_t *auth_out;          /* extended-auth data from the last verdict */
    size_t auth_out_len;
    char *assigned_id;          /* an assigned client id, kept across a replay */
    char *auth_method;          /* the method of CONNECT, for AUTH and re-authentication */
    uint8_t *saved_connect;     /* the CONNECT, kept while AUTH packets go back and forth */
    size_t saved_connect_len;
    cx_worker_t *handover;      /* set by CONNECT when the session lives on that worker */
    char **alias_in;            /* alias -> topic, allocated on first use */
    cx_alias_out_t *alias_out;  /* broker-assigned aliases, when the client allows some */
} cx_client_rare_t;

/* One per connection: ordered to leave a single byte of padding (120 bytes). */
struct cx_client {
    cx_conn_t *conn;
    cx_worker_t *worker;
    cx_session_t *session;      /* NULL until CONNECT is accepted; referenced */
    cx_list_t worker_link;      /* on worker->clients once connected */
    /* In CX_CL_NEW: when the connection reached this layer (the CONNECT deadline counts
     * from it, however the bytes trickle in). From CX_CL_AUTH or CX_CL_CONNECTED on: when
     * the last bytes were read (per-AUTH timeout, keep alive). */
    int64_t last_rx_ms;
    char *username;
    /* plugins */
    cx_chain_t *chain;          /* this listener's hook chain (NULL: no plugins) */
    culex_client *pc;           /* the client as plugins see it, from CONNECT on, if chain */
    struct cx_wait *wait;       /* a pending plugin decision (reads paused) */
    struct cx_fc_wait *fc;      /* held back by flow control (reads paused; flow.c) */
    cx_client_rare_t *rare;     /* NULL for most clients most of the time */
    uint32_t max_packet_out;    /* client's Maximum Packet Size, 0 = none */
    uint32_t nheld;             /* acknowledgements held for durability (persist.c) */
    uint8_t state;
    uint8_t version;
    bool will_suppressed;       /* normal DISCONNECT: no will */
    bool request_problem_info;
    bool server_closed;         /* cx_client_disconnect closed it (logged there) */
    uint16_t keepalive;         /* seconds, as in force (Server Keep Alive applied) */
    uint16_t recv_max_out;      /* client's Receive Maximum: our outgoing window */
    uint16_t server_recv_max;   /* our Receive Maximum announced in CONNACK */
    uint16_t alias_in_max;      /* topic aliases the client may use towards us */
    uint16_t alias_out_max;     /* aliases we may use towards the client */
};

/* The listener configuration the client connected through. */
static inline const cx_listener_conf_t *cx_client_lconf(const cx_client_t *cl)
{
    return (const cx_listener_conf_t *)cl->conn->listener->conf;
}

/* The client's rare part, allocated (zeroed) if it has none yet; NULL when out of memory. */
cx_client_rare_t *cx_client_rare(cx_client_t *cl);
/* Frees the rare part once nothing is left in it. */
void cx_client_rare_trim(cx_client_t *cl);

/* Net callbacks: the cx_conn_ops_t for MQTT connections. */
extern const cx_conn_ops_t cx_client_conn_ops;

/* Creates the protocol state for a newly attached connection. */
cx_client_t *cx_client_new(cx_worker_t *w, cx_conn_t *c);
/* Sends a PUBLISH; returns false if the packet would exceed the client's
 * Maximum Packet Size (the message is then dropped as if delivered, [MQTT-3.1.2-25]). */
bool cx_client_send_publish(cx_client_t *cl, const cx_msg_t *msg, uint8_t qos, bool retain,
                            uint16_t pid, bool dup, const uint32_t *sub_ids, size_t nsub);
void cx_client_send_ack(cx_client_t *cl, cx_mqtt_type type, uint16_t pid, uint8_t rc);
/* Server-initiated close: a v5 client gets DISCONNECT with rc first. */
void cx_client_disconnect(cx_client_t *cl, uint8_t rc, const char *reason);
/* Keepalive check from the worker tick. */
void cx_client_tick(cx_client_t *cl, int64_t now_ms);
/* Resumes handling of a connection handed over from another worker. */
void cx_client_adopt(cx_worker_t *w, cx_conn_t *c);
/* Handles the buffered packets again after a plugin verdict (authz.c). */
void cx_client_replay(cx_client_t *cl);
/* Disconnects the connected client with this id if it is on worker w (plugin kick). */
void cx_client_kick(cx_worker_t *w, const char *client_id);

#endif
