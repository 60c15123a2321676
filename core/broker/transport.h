/* transport.h: sets up each listener's transport stack (PROXY protocol, TLS, WebSockets)
 * from its configuration, and rebuilds TLS contexts on reload.
 *
 * net/ knows no configuration types; this is where a cx_listener_conf_t becomes a
 * cx_transport_t. Main thread only. */
#ifndef CX_BROKER_TRANSPORT_H
#define CX_BROKER_TRANSPORT_H

#include <stddef.h>

#include "broker/broker.h"

/* Fills l->tp from lc and builds its TLS context (reading every certificate, key, CRL and
 * PSK file). Returns CX_OK, or CX_ECONFIG with err saying which file and why. */
int cx_transport_setup(cx_listener_t *l, const cx_listener_conf_t *lc, const cx_config_t *cfg,
                       char *err, size_t errlen);

/* Builds the TLS context a listener configuration asks for, to check it (--test-config).
 * CX_OK when the listener has no TLS or its files are good; CX_ECONFIG with err. */
int cx_transport_check(const cx_listener_conf_t *lc, const cx_config_t *cfg, char *err,
                       size_t errlen);

/* SIGHUP: new TLS contexts from the (reloaded) live configuration for every TLS listener.
 * A listener whose files are now broken keeps its old context (logged). */
void cx_transport_reload(cx_broker_t *b);

#endif
