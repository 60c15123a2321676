/* culex/sdk/acl.h — the ACL pattern engine (libculex-plugin), with Mosquitto's acl_file
 * semantics so that an existing acl_file keeps granting exactly what it granted.
 *
 * File syntax (one directive a line; blank lines and lines starting with '#' are skipped;
 * leading and trailing blanks are ignored):
 *
 *   topic [read|write|readwrite|deny] <filter>    a rule for the current section
 *   user <username>                               starts the section of that username
 *   pattern [read|write|readwrite|deny] <filter>  a rule for every client
 *
 * `topic` lines before the first `user` line form the anonymous section (clients without a
 * username). Without an access word a rule is `readwrite`; with only one word after the
 * keyword that word is the filter (so `topic read` grants readwrite on topic "read", as in
 * Mosquitto). A filter may contain spaces and MQTT wildcards. In `pattern` filters a level
 * that is exactly `%u` stands for the client's username and `%c` for its client id; `%u`
 * or `%c` inside a longer level is an error (Mosquitto 2.0 substituted text anywhere,
 * 2.1 only whole levels: a file relying on the 2.0 behaviour is refused with its line).
 *
 * Evaluation of culex_acl_check() for READ and WRITE, as Mosquitto 2's acl_file:
 *   1. The client's own section: the user's (by username) or, for anonymous clients, the
 *      anonymous section. Its deny rules are tried first: a matching deny answers DENY.
 *      Then its grants: a matching grant that includes the access answers ALLOW.
 *   2. If any pattern exists: a username or client id containing '+' or '#' answers DENY
 *      (a wildcard in a name must never widen access), and so does a '/' in a name that a
 *      pattern substitutes (`%u`, `%c`). A missing client id answers DENY.
 *   3. Pattern denies, then pattern grants, as in 1. A `%u` pattern never matches an
 *      anonymous client.
 *   4. Nothing matched: CULEX_ACL_NO_MATCH (Mosquitto's acl_file denies here; a plugin maps
 *      NO_MATCH to deny, or to "defer" when it is one link of a chain).
 * So a grant in the user's own section is not overridden by a `pattern ... deny` line;
 * Mosquitto behaves the same way.
 * A topic starting with '$' is matched only by filters starting with '$' (`#` does not
 * give `$SYS/...`). Topics containing '+' or '#' are refused for READ and WRITE.
 *
 * SUBSCRIBE and UNSUBSCRIBE: Mosquitto 2's acl_file allows both unconditionally and relies
 * on the READ check of every delivered message, which is the default here too
 * (culex_acl_check answers ALLOW). With CULEX_ACL_STRICT_SUBSCRIBE, SUBSCRIBE checks the
 * subscription filter: a rule applies when its filter covers the subscription, i.e. every
 * topic the subscription can match is matched by the rule (Mosquitto's sub_matches_acl:
 * `a/#` covers `a/+/b` and `a/#`; `a/+` covers `a/x` and `a/+` but not `a/#`; a literal
 * level covers only the same literal). Deny rules that cover it answer DENY, grants with
 * READ or SUBSCRIBE that cover it answer ALLOW, steps 1–4 otherwise as above; a deny that
 * only overlaps the filter still filters each delivered message through READ. UNSUBSCRIBE
 * is always allowed: refusing it can only keep a client receiving more.
 *
 * Thread safety: building (load_file, add_rule, set_flags) is single-threaded; a built
 * culex_acl is immutable and culex_acl_check() may run on any number of threads at once.
 * culex_acl_check() does not allocate. */
#ifndef CULEX_SDK_ACL_H
#define CULEX_SDK_ACL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct culex_acl culex_acl;

/* Access kinds (one per check; masks in rules). */
#define CULEX_ACL_READ 0x1u        /* a message delivered to the client (topic name) */
#define CULEX_ACL_WRITE 0x2u       /* a message the client publishes (topic name) */
#define CULEX_ACL_SUBSCRIBE 0x4u   /* a subscription (topic filter) */
#define CULEX_ACL_UNSUBSCRIBE 0x8u /* an unsubscription (topic filter) */
/* In a rule's access mask: this rule denies the kinds in the mask (all kinds if none). */
#define CULEX_ACL_DENY_RULE 0x100u

/* Results of culex_acl_check(). */
#define CULEX_ACL_NO_MATCH 0
#define CULEX_ACL_ALLOW 1
#define CULEX_ACL_DENY 2

/* Flags for culex_acl_set_flags(). */
#define CULEX_ACL_STRICT_SUBSCRIBE 0x1u

/* Sections for culex_acl_add_rule(). */
typedef enum culex_acl_section {
    CULEX_ACL_ANONYMOUS = 0, /* `topic` lines before any `user` line */
    CULEX_ACL_USER = 1,      /* `topic` lines after `user <username>` */
    CULEX_ACL_PATTERN = 2,   /* `pattern` lines: everyone, with %u and %c */
} culex_acl_section;

/* A new, empty rule set, or NULL when out of memory. */
culex_acl *culex_acl_new(void);

/* Sets CULEX_ACL_* flags (replacing earlier ones). */
void culex_acl_set_flags(culex_acl *acl, unsigned flags);

/* Reads an acl_file into `acl` (rules add to those already there). Returns 0, or a negative
 * errno value with a message "FILE:LINE: message" (or "FILE: message" for I/O errors) in
 * err. On error the rule set holds the lines before the bad one: discard it. */
int culex_acl_load_file(culex_acl *acl, const char *path, char *err, size_t errlen);

/* Parses acl_file text held in memory; `name` is used in messages. As load_file. */
int culex_acl_load_string(culex_acl *acl, const char *name, const char *text, char *err,
                          size_t errlen);

/* Adds one rule, for database-backed plugins building rule sets from rows. `username` is
 * used with CULEX_ACL_USER only. `access` is a mask of CULEX_ACL_READ|WRITE|SUBSCRIBE, or
 * CULEX_ACL_DENY_RULE (optionally with the kinds it denies); the acl_file words map to
 * read = READ|SUBSCRIBE, write = WRITE, readwrite = READ|WRITE|SUBSCRIBE, deny =
 * DENY_RULE. `filter` is an MQTT topic filter (copied). Returns 0, -EINVAL (bad filter or
 * arguments, message in err if err is not NULL) or -ENOMEM. */
int culex_acl_add_rule(culex_acl *acl, culex_acl_section section, const char *username,
                       unsigned access, const char *filter, char *err, size_t errlen);

/* Checks one access: `username` NULL = anonymous client; `client_id` may be NULL (then any
 * pattern answers DENY); `access` one CULEX_ACL_* kind; `topic` the topic name for READ and
 * WRITE, the topic filter for SUBSCRIBE and UNSUBSCRIBE. Returns CULEX_ACL_ALLOW,
 * CULEX_ACL_DENY or CULEX_ACL_NO_MATCH. Any thread, no allocation. */
int culex_acl_check(const culex_acl *acl, const char *username, const char *client_id,
                    unsigned access, const char *topic);

/* Number of rules and of user sections (for logs). */
size_t culex_acl_rule_count(const culex_acl *acl);
size_t culex_acl_user_count(const culex_acl *acl);

/* Frees the rule set (NULL is fine). */
void culex_acl_free(culex_acl *acl);

#ifdef __cplusplus
}
#endif

#endif
