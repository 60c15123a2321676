/* culex_passwd — manage password files: the command line and file format of
 * mosquitto_passwd (one `username:hash` line per user). Writes `$7$` (PBKDF2-SHA512, 1000
 * iterations, 12-byte salt: readable by Mosquitto 2.0 and 2.1 alike) unless `-H argon2id`.
 *
 * Files are replaced atomically: a temporary file in the same directory is written, synced
 * and renamed over the old one, keeping its mode and (when permitted) owner; a new file
 * gets mode 0600. Lines that are not for the user being changed (comments included) are
 * kept as they are. `-U` leaves entries that already hold a recognised hash alone, where
 * Mosquitto 2.0's tool would hash the hash. */
#include <culex/sdk/password.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define MAX_FIELD 65535

typedef struct lines {
    char **v;
    size_t n, cap;
} lines;

static void usage(void)
{
    printf("culex_passwd is a tool for managing password files for culex (and mosquitto).\n\n"
           "Usage: culex_passwd [-H argon2id | -H sha512-pbkdf2] [-I iterations] [-c | -D] "
           "passwordfile username\n"
           "       culex_passwd [-H argon2id | -H sha512-pbkdf2] [-I iterations] [-c] -b "
           "passwordfile username password\n"
           "       culex_passwd -U passwordfile\n"
           " -b : run in batch mode to allow passing passwords on the command line.\n"
           " -c : create a new password file. This will overwrite existing files.\n"
           " -D : delete the username rather than adding/updating its password.\n"
           " -H : specify the hashing algorithm. Defaults to sha512-pbkdf2 ($7$, readable by\n"
           "      mosquitto 2.0 and later); argon2id needs culex or mosquitto 2.1.\n"
           " -I : specify the number of hashing iterations (argon2id: passes). Defaults to\n"
           "      1000 for sha512-pbkdf2 and 1 for argon2id.\n"
           " -U : update a plain text password file to use hashed passwords.\n");
}

static int lines_push(lines *l, char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void lines_free(lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Reads the file into lines without their newline. Returns 0, or -errno. */
static int read_lines(const char *path, lines *out)
{
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -errno;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&buf, &cap, fp)) >= 0) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        char *copy = strdup(buf);
        if (!copy || lines_push(out, copy) != 0) {
            free(copy);
            rc = -ENOMEM;
            break;
        }
    }
    if (rc == 0 && ferror(fp))
        rc = -EIO;
    free(buf);
    fclose(fp);
    return rc;
}

/* Writes lines to `path` through a synced temporary file and a rename. */
static int write_atomic(const char *path, const lines *l)
{
    char real[PATH_MAX];
    struct stat st;
    bool existed = false;
    /* Follow a symlink so that the link stays and the file it names is replaced. */
    if (realpath(path, real)) {
        path = real;
        existed = stat(path, &st) == 0;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    char *dircopy = strdup(path);
    if (!tmp || !dircopy) {
        free(tmp);
        free(dircopy);
        fprintf(stderr, "Error: Out of memory.\n");
        return -1;
    }
    snprintf(tmp, plen + 8, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "Error: Unable to write password file %s. %s.\n", path,
                strerror(errno));
        free(tmp);
        free(dircopy);
        return -1;
    }
    if (existed) {
        if (fchown(fd, st.st_uid, st.st_gid) != 0) {
            /* Not root: the file becomes ours, as any editor would leave it. */
        }
        (void)fchmod(fd, st.st_mode & 07777);
    } else {
        (void)fchmod(fd, 0600);
    }
    FILE *fp = fdopen(fd, "w");
    int ok = fp != NULL;
    for (size_t i = 0; ok && i < l->n; i++)
        ok = fputs(l->v[i], fp) >= 0 && fputc('\n', fp) != EOF;
    if (fp) {
        ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
        ok = (fclose(fp) == 0) && ok;
    } else {
        close(fd);
    }
    if (ok)
        ok = rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "Error: Unable to write password file %s. %s.\n", path,
                strerror(errno));
        unlink(tmp);
        free(tmp);
        free(dircopy);
        return -1;
    }
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(tmp);
    free(dircopy);
    return 0;
}

/* Reads one line from stdin, without echo when stdin is a terminal. */
static char *read_password(const char *prompt)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        /* Echo off before the prompt appears, so nothing typed after it is echoed. */
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fputs(prompt, stdout);
        fflush(stdout);
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, stdin);
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return buf;
}

static void wipe_free(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = '\0';
        free(s);
    }
}

static char *get_password(void)
{
    char *a = read_password("Password: ");
    if (!a) {
        fprintf(stderr, "Error: Unable to read password.\n");
        return NULL;
    }
    char *b = read_password("Reenter password: ");
    if (!b) {
        fprintf(stderr, "Error: Unable to read password.\n");
        wipe_free(a);
        return NULL;
    }
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "Error: Passwords do not match.\n");
        wipe_free(a);
        wipe_free(b);
        return NULL;
    }
    wipe_free(b);
    if (a[0] == '\0') {
        fprintf(stderr, "Error: Empty password.\n");
        wipe_free(a);
        return NULL;
    }
    return a;
}

/* Builds "username:hash" in a new string, or NULL after printing an error. */
static char *make_entry(const char *username, const char *password, culex_pw_scheme scheme,
                        unsigned iterations)
{
    char hash[CULEX_PW_ENCODED_MAX];
    int rc = culex_pw_hash(scheme, password, strlen(password), iterations, hash, sizeof hash);
    if (rc != 0) {
        fprintf(stderr, "Error: Unable to hash password: %s.\n", culex_pw_strerror(rc));
        return NULL;
    }
    size_t len = strlen(username) + 1 + strlen(hash) + 1;
    char *line = malloc(len);
    if (!line) {
        fprintf(stderr, "Error: Out of memory.\n");
        return NULL;
    }
    snprintf(line, len, "%s:%s", username, hash);
    return line;
}

/* Does `line` hold an entry for `username`? */
static bool line_is_user(const char *line, const char *username)
{
    size_t ul = strlen(username);
    return strncmp(line, username, ul) == 0 && line[ul] == ':';
}

static int update_file(const char *path, const char *username, const char *password,
                       bool create, bool delete, culex_pw_scheme scheme, unsigned iterations)
{
    lines l = {0};
    if (!create) {
        int rc = read_lines(path, &l);
        if (rc != 0) {
            fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path,
                    strerror(-rc));
            lines_free(&l);
            return 1;
        }
    }
    char *entry = NULL;
    if (!delete) {
        entry = make_entry(username, password, scheme, iterations);
        if (!entry) {
            lines_free(&l);
            return 1;
        }
    }
    bool found = false;
    size_t w = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (line_is_user(l.v[i], username)) {
            free(l.v[i]);
            if (!delete && !found) {
                l.v[w++] = entry; /* replace the first entry in place */
                entry = NULL;
            }
            found = true;
            continue;
        }
        l.v[w++] = l.v[i];
    }
    l.n = w;
    if (delete && !found) {
        fprintf(stderr, "Warning: User %s not found in password file.\n", username);
        lines_free(&l);
        return 1;
    }
    if (entry && lines_push(&l, entry) != 0) {
        free(entry);
        lines_free(&l);
        fprintf(stderr, "Error: Out of memory.\n");
        return 1;
    }
    int rc = write_atomic(path, &l);
    lines_free(&l);
    return rc == 0 ? 0 : 1;
}

/* -U: hashes every plain-text password in place. */
static int upgrade_file(const char *path, culex_pw_scheme scheme, unsigned iterations)
{
    lines l = {0};
    int rc = read_lines(path, &l);
    if (rc != 0) {
        fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path, strerror(-rc));
        lines_free(&l);
        return 1;
    }
    for (size_t i = 0; i < l.n; i++) {
        char *line = l.v[i];
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            fprintf(stderr, "Error: Corrupt password file at line %zu.\n", i + 1);
            lines_free(&l);
            return 1;
        }
        *colon = '\0';
        const char *password = colon + 1;
        if (culex_pw_identify(password) >= 0) {
            *colon = ':'; /* already hashed */
            continue;
        }
        char *entry = make_entry(line, password, scheme, iterations);
        *colon = ':'; /* so that wipe_free() clears the password too */
        if (!entry) {
            lines_free(&l);
            return 1;
        }
        wipe_free(l.v[i]);
        l.v[i] = entry;
    }
    rc = write_atomic(path, &l);
    lines_free(&l);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    bool batch = false, create = false, delete = false, upgrade = false;
    culex_pw_scheme scheme = CULEX_PW_SHA512_PBKDF2;
    unsigned iterations = 0;
    int i = 1;

    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "-b") == 0) {
            batch = true;
        } else if (strcmp(a, "-c") == 0) {
            create = true;
        } else if (strcmp(a, "-D") == 0) {
            delete = true;
        } else if (strcmp(a, "-U") == 0) {
            upgrade = true;
        } else if (strcmp(a, "-H") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "Error: -H argument given but not enough arguments.\n");
                return 1;
            }
            const char *h = argv[++i];
            if (strcmp(h, "sha512-pbkdf2") == 0) {
                scheme = CULEX_PW_SHA512_PBKDF2;
            } else if (strcmp(h, "argon2id") == 0) {
                scheme = CULEX_PW_ARGON2ID;
            } else {
                fprintf(stderr, "Error: Unknown hash type '%s'\n", h);
                return 1;
            }
        } else if (strcmp(a, "-I") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "Error: -I argument given but not enough arguments.\n");
                return 1;
            }
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end != '\0' || end == argv[i] || v < 1 || v > INT_MAX) {
                fprintf(stderr, "Error: Number of iterations must be > 0.\n");
                return 1;
            }
            iterations = (unsigned)v;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "Error: Unknown option '%s'.\n", a);
            usage();
            return 1;
        }
    }
    int nargs = argc - i;
    char **args = argv + i;

    if (create && delete) {
        fprintf(stderr, "Error: -c and -D cannot be used together.\n");
        return 1;
    }
    if (upgrade) {
        if (batch || create || delete) {
            fprintf(stderr, "Error: -U cannot be used with -b, -c or -D.\n");
            return 1;
        }
        if (nargs != 1) {
            usage();
            return 1;
        }
        return upgrade_file(args[0], scheme, iterations);
    }
    if (batch && delete) {
        fprintf(stderr, "Error: -b and -D cannot be used together.\n");
        return 1;
    }
    if (nargs != (batch ? 3 : 2)) {
        usage();
        return 1;
    }
    const char *path = args[0], *username = args[1];
    if (strchr(username, ':')) {
        fprintf(stderr, "Error: Username must not contain the ':' character.\n");
        return 1;
    }
    if (strpbrk(username, "\r\n")) {
        fprintf(stderr, "Error: Username must not contain a line break.\n");
        return 1;
    }
    if (username[0] == '#') {
        /* Readers (Mosquitto's and culex's) take such a line for a comment. */
        fprintf(stderr, "Error: Username must not start with '#'.\n");
        return 1;
    }
    if (username[0] == '\0') {
        fprintf(stderr, "Error: Username must not be empty.\n");
        return 1;
    }
    if (strlen(username) > MAX_FIELD) {
        fprintf(stderr, "Error: Username must be less than %d characters long.\n",
                MAX_FIELD + 1);
        return 1;
    }
    if (delete)
        return update_file(path, username, NULL, false, true, scheme, iterations);

    if (!create) {
        /* Fail before asking for a password when the file cannot be read. */
        if (access(path, R_OK | W_OK) != 0) {
            fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path,
                    strerror(errno));
            return 1;
        }
    }
    char *password = batch ? strdup(args[2]) : get_password();
    if (!password)
        return 1;
    if (strlen(password) > MAX_FIELD) {
        fprintf(stderr, "Error: Password must be less than %d characters long.\n",
                MAX_FIELD + 1);
        wipe_free(password);
        return 1;
    }
    int rc = update_file(path, username, password, create, false, scheme, iterations);
    wipe_free(password);
    return rc;
}
