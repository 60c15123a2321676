/* client_int.h: what the three files of a client's protocol handling share (client.c:
 * reading, dispatch, sending; connect.c: CONNECT/AUTH/DISCONNECT; pubsub.c: PUBLISH,
 * acknowledgements, SUBSCRIBE/UNSUBSCRIBE). Not for other modules. */
#ifndef CX_BROKER_CLIENT_INT_H
#define CX_BROKER_CLIENT_INT_H

#include "broker/client.h"

/* client.c */
cx_buf_t *cx_client_outbuf(cx_client_t *cl);
/* Accounts bytes appended to the output buffer since `before` and schedules the flush. */
void cx_client_sent(cx_client_t *cl, size_t before);
/* Out of memory (memory_limit) while handling this client: it is disconnected. */
void cx_client_fail_oom(cx_client_t *cl);
/* Adds a reason string for clients that did not opt out [MQTT-3.1.2-29]. */
void cx_client_props_reason(cx_client_t *cl, cx_mqtt_props_t *props, const char *reason);
/* Prefixes a topic or filter with the listener's mount_point (buf, or *heap to free). */
cx_str_t cx_client_mounted(const cx_client_t *cl, cx_str_t f, char *buf, size_t buflen,
                           char **heap);
/* Sets up broker-assigned topic aliases towards the client (0 = none). */
int cx_client_alias_out_init(cx_client_t *cl, uint16_t max);

/* connect.c */
void cx_client_on_connect(cx_client_t *cl, const cx_mqtt_connect_t *c);
void cx_client_on_auth(cx_client_t *cl, const cx_mqtt_reason_t *r);
void cx_client_on_disconnect(cx_client_t *cl, const cx_mqtt_reason_t *r);
/* Refuses a CONNECT: CONNACK with the reason, then close [MQTT-3.2.2-6]. */
void cx_client_refuse(cx_client_t *cl, uint8_t rc, const char *why);
/* The connection ends: the session goes offline (will, expiry). */
void cx_client_detach_session(cx_client_t *cl);

/* pubsub.c */
void cx_client_on_publish(cx_client_t *cl, const cx_mqtt_publish_t *p);
void cx_client_on_ack(cx_client_t *cl, cx_mqtt_type type, const cx_mqtt_ack_t *a);
void cx_client_on_subscribe(cx_client_t *cl, const cx_mqtt_subscribe_t *sub);
void cx_client_on_unsubscribe(cx_client_t *cl, const cx_mqtt_unsubscribe_t *u);

#endif
