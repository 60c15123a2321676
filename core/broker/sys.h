/* sys.h: the $SYS/broker tree, published by worker 0 every sys_interval seconds with
 * Mosquitto's topic names, as retained QoS 0 messages. */
#ifndef CX_BROKER_SYS_H
#define CX_BROKER_SYS_H

#include "broker/broker.h"

/* Called by worker 0 once a second. */
/* Sets the static topics (version). Before the workers start. */
void cx_sys_init(cx_broker_t *b);
void cx_sys_tick(cx_worker_t *w);
void cx_sys_free(cx_broker_t *b);

#endif
