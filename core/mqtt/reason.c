/* reason.c: reason-code names, packet-type names, and the v5 -> 3.x CONNACK mapping. */
#include "codec_internal.h"

/* 3.x has six CONNACK return codes; v5 has many reasons to refuse. Each v5 code goes to the
 * 3.x code whose meaning is nearest (MQTT 5 has no normative table for this):
 *   - protocol version problems              -> 1 unacceptable protocol version
 *   - client identifier problems             -> 2 identifier rejected
 *   - credentials / authentication method    -> 4 bad user name or password
 *   - policy refusals (not authorized, banned, will topic/QoS/retain/payload refused)
 *                                            -> 5 not authorized
 *   - everything else (server state, load, malformed input, redirects, quotas)
 *                                            -> 3 server unavailable
 * Values 0..5 pass through unchanged, so mapping an already-3.x code is harmless. */
uint8_t cx_mqtt_rc_to_v3_connack(uint8_t rc)
{
    if (rc <= CX_V3_CONNACK_NOT_AUTHORIZED)
        return rc;
    switch (rc) {
    case CX_RC_UNSUPPORTED_PROTOCOL_VERSION:
        return CX_V3_CONNACK_BAD_PROTOCOL;
    case CX_RC_CLIENT_ID_NOT_VALID:
        return CX_V3_CONNACK_ID_REJECTED;
    case CX_RC_BAD_USERNAME_OR_PASSWORD:
    case CX_RC_BAD_AUTH_METHOD:
        return CX_V3_CONNACK_BAD_CREDENTIALS;
    case CX_RC_NOT_AUTHORIZED:
    case CX_RC_BANNED:
    case CX_RC_TOPIC_NAME_INVALID:
    case CX_RC_PAYLOAD_FORMAT_INVALID:
    case CX_RC_RETAIN_NOT_SUPPORTED:
    case CX_RC_QOS_NOT_SUPPORTED:
        return CX_V3_CONNACK_NOT_AUTHORIZED;
    default:
        /* 0x80..0x83, 0x88 unavailable, 0x89 busy, 0x95 too large, 0x97 quota,
         * 0x9C/0x9D redirects, 0x9F connection rate, anything unknown. */
        return CX_V3_CONNACK_SERVER_UNAVAILABLE;
    }
}

const char *cx_mqtt_rc_name(uint8_t rc)
{
    switch (rc) {
    case 0x00: return "Success";
    case 0x01: return "Granted QoS 1";
    case 0x02: return "Granted QoS 2";
    case 0x04: return "Disconnect with Will Message";
    case 0x10: return "No matching subscribers";
    case 0x11: return "No subscription existed";
    case 0x18: return "Continue authentication";
    case 0x19: return "Re-authenticate";
    case 0x80: return "Unspecified error";
    case 0x81: return "Malformed Packet";
    case 0x82: return "Protocol Error";
    case 0x83: return "Implementation specific error";
    case 0x84: return "Unsupported Protocol Version";
    case 0x85: return "Client Identifier not valid";
    case 0x86: return "Bad User Name or Password";
    case 0x87: return "Not authorized";
    case 0x88: return "Server unavailable";
    case 0x89: return "Server busy";
    case 0x8A: return "Banned";
    case 0x8B: return "Server shutting down";
    case 0x8C: return "Bad authentication method";
    case 0x8D: return "Keep Alive timeout";
    case 0x8E: return "Session taken over";
    case 0x8F: return "Topic Filter invalid";
    case 0x90: return "Topic Name invalid";
    case 0x91: return "Packet Identifier in use";
    case 0x92: return "Packet Identifier not found";
    case 0x93: return "Receive Maximum exceeded";
    case 0x94: return "Topic Alias invalid";
    case 0x95: return "Packet too large";
    case 0x96: return "Message rate too high";
    case 0x97: return "Quota exceeded";
    case 0x98: return "Administrative action";
    case 0x99: return "Payload format invalid";
    case 0x9A: return "Retain not supported";
    case 0x9B: return "QoS not supported";
    case 0x9C: return "Use another server";
    case 0x9D: return "Server moved";
    case 0x9E: return "Shared Subscriptions not supported";
    case 0x9F: return "Connection rate exceeded";
    case 0xA0: return "Maximum connect time";
    case 0xA1: return "Subscription Identifiers not supported";
    case 0xA2: return "Wildcard Subscriptions not supported";
    default: return "Unknown reason code";
    }
}

const char *cx_mqtt_type_name(cx_mqtt_type t)
{
    static const char *const names[16] = {
        "RESERVED", "CONNECT",     "CONNACK",  "PUBLISH", "PUBACK",  "PUBREC",
        "PUBREL",   "PUBCOMP",     "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ",  "PINGRESP",    "DISCONNECT", "AUTH",
    };
    unsigned i = (unsigned)t;
    return i < 16 ? names[i] : "UNKNOWN";
}
