/* err.h: culex's one internal error type.
 *
 * Every action returns CX_OK (0) or a negative cx_err. Values from -1 to -4095 are
 * reserved for -errno so that syscall failures pass through unchanged; culex's own codes
 * live below that range. MQTT reason codes are a different type (cx_mqtt_rc) and are
 * never returned as errors. */
#ifndef CX_ERR_H
#define CX_ERR_H

typedef enum cx_err {
    CX_OK = 0,
    /* -1 .. -4095: -errno */
    CX_ENOMEM = -5001,  /* allocation failed or memory_limit reached */
    CX_EAGAIN = -5002,  /* would block / need more input */
    CX_EPROTO = -5003,  /* protocol violation by the peer */
    CX_ETOOBIG = -5004, /* a capped buffer or limit would be exceeded */
    CX_EIO = -5005,     /* I/O failed */
    CX_ECLOSED = -5006, /* the peer or the object is gone */
    CX_ECONFIG = -5007, /* invalid configuration */
    CX_EINVAL = -5008,  /* invalid argument */
    CX_ENOTFOUND = -5009,
    CX_EEXIST = -5010,
    CX_EUNSUPPORTED = -5011, /* recognised but not supported (yet) */
    CX_EFORMAT = -5012,      /* a file is not in the expected format (not ours, or corrupt) */
} cx_err;

/* Human-readable text for any cx_err or -errno value. Never NULL. */
const char *cx_strerror(int err);
/* Symbolic name ("CX_ENOMEM", "ECONNRESET"). Never NULL. */
const char *cx_errname(int err);

#define CX_ASSERT(cond)                                                                 \
    do {                                                                                \
        if (__builtin_expect(!(cond), 0))                                               \
            cx_assert_fail(#cond, __FILE__, __LINE__);                                  \
    } while (0)
#ifdef NDEBUG
#define CX_DEBUG_ASSERT(cond) ((void)0)
#else
#define CX_DEBUG_ASSERT(cond) CX_ASSERT(cond)
#endif

_Noreturn void cx_assert_fail(const char *expr, const char *file, int line);

#endif
