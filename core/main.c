/* main.c: culex's command line (Mosquitto's flags), start-up order, daemonising, privilege
 * drop and signal handling. The main thread owns the configuration and only waits for
 * signals; the workers do everything else. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/persist.h"
#include "broker/transport.h"
#include "config/config.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/log.h"

#ifndef CULEX_VERSION
#define CULEX_VERSION "0.0.0"
#endif

typedef struct cli {
    const char *config_file;
    int ports[CX_CONF_MAX_CLI_PORTS];
    size_t nports;
    bool daemon;
    bool verbose;
    bool quiet;
    bool test_config;
} cli_t;

static void usage(FILE *out)
{
    fprintf(out,
            "culex version %s, an MQTT 5.0/3.1.1/3.1 broker\n\n"
            "Usage: culex [-c config_file] [-d] [-h] [-p port] [-q] [-v] [--test-config]\n"
            "             [--version]\n\n"
            " -c, --config-file : read the configuration from a file (mosquitto.conf syntax).\n"
            "                     Without one, culex listens on localhost only and allows\n"
            "                     anonymous clients.\n"
            " -d, --daemon      : run in the background.\n"
            " -h, --help        : show this help.\n"
            " -p, --port        : listen on this port on localhost (up to %d times); ignored\n"
            "                     when the configuration defines listeners.\n"
            " -q, --quiet       : log nothing.\n"
            " -v, --verbose     : log everything (log_type all).\n"
            "     --test-config : check the configuration and exit.\n"
            "     --version     : print the version and exit.\n\n"
            "See culex(8) and culex.conf(5).\n",
            CULEX_VERSION, CX_CONF_MAX_CLI_PORTS);
}

/* Returns 0 to go on, 1 to exit 0 (help/version), -1 to exit with an error. */
static int parse_args(int argc, char **argv, cli_t *cli)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config-file")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "Error: -c argument given, but no config file specified.\n");
                return -1;
            }
            cli->config_file = argv[++i];
        } else if (!strcmp(a, "-d") || !strcmp(a, "--daemon")) {
            cli->daemon = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--port")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "Error: -p argument given, but no port specified.\n");
                return -1;
            }
            if (cli->nports == CX_CONF_MAX_CLI_PORTS) {
                fprintf(stderr, "Error: Only %d ports can be specified on the command line.\n",
                        CX_CONF_MAX_CLI_PORTS);
                return -1;
            }
            if (cx_config_parse_cli_port(argv[++i], &cli->ports[cli->nports]) != CX_OK) {
                fprintf(stderr, "Error: Invalid port specified (%s).\n", argv[i]);
                return -1;
            }
            cli->nports++;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            cli->quiet = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            cli->verbose = true;
        } else if (!strcmp(a, "--test-config")) {
            cli->test_config = true;
        } else if (!strcmp(a, "--version")) {
            printf("culex version %s\n", CULEX_VERSION);
            return 1;
        } else if (!strcmp(a, "--tls-keylog")) {
            fprintf(stderr, "Error: --tls-keylog: not supported yet (TLS).\n");
            return -1;
        } else {
            fprintf(stderr, "Error: Unknown option '%s'.\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* Loads (or reloads) the configuration; NULL with the error printed on failure. */
static cx_config_t *load_config(const cli_t *cli, FILE *errout)
{
    char err[4096] = "";
    cx_config_t *cfg = cx_config_new();
    if (!cfg) {
        fprintf(errout, "Error: out of memory.\n");
        return NULL;
    }
    int rc = CX_OK;
    if (cli->config_file)
        rc = cx_config_load(cfg, cli->config_file, err, sizeof err);
    if (rc == CX_OK)
        rc = cx_config_finish(cfg, cli->ports, cli->nports, err, sizeof err);
    if (rc != CX_OK) {
        /* Printed whatever log_type says, so a refused file is never silent. */
        char *line = err, *nl;
        do {
            nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            if (*line)
                fprintf(errout, "Error: %s\n", line);
            line = nl ? nl + 1 : NULL;
        } while (line && *line);
        if (!err[0])
            fprintf(errout, "Error: %s\n", cx_strerror(rc));
        cx_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static int apply_logging(const cx_config_t *cfg, const cli_t *cli)
{
    cx_log_settings_t ls;
    cx_config_log_settings(cfg, &ls);
    if (cli->verbose)
        ls.types = CX_LOG_ALL;
    if (cli->quiet)
        ls.types = 0;
    if (cli->daemon)
        ls.dests &= ~(unsigned)(CX_LOGDEST_STDOUT | CX_LOGDEST_STDERR);
    int rc = cx_log_configure(&ls);
    if (rc)
        fprintf(stderr, "Error: Unable to open log file %s for writing: %s.\n",
                ls.file_path ? ls.file_path : "?", strerror(-rc));
    return rc;
}

static int daemonise(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return CX_OK;
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f) == 0 ? CX_OK : -errno;
}

/* Like Mosquitto: when started as root, become `user` (default "mosquitto"), falling back
 * to "nobody" if that user does not exist. Listeners and log files are already open. */
static int drop_privileges(const char *user)
{
    if (geteuid() != 0 || !user || !*user || !strcmp(user, "root"))
        return CX_OK;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        cx_log(CX_LOG_WARNING, "Unable to drop privileges to '%s' because this user does not "
                               "exist. Trying 'nobody' instead.", user);
        pw = getpwnam("nobody");
        if (!pw)
            return CX_ENOTFOUND;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0)
        return -errno;
    return CX_OK;
}

static void reload(cx_broker_t *b, cx_config_t *live, const cli_t *cli)
{
    cx_log(CX_LOG_NOTICE, "Reloading config.");
    if (!live->config_file) {
        cx_log(CX_LOG_NOTICE, "No configuration file to reload.");
        return;
    }
    char *tmp = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&tmp, &len);
    cx_config_t *fresh = load_config(cli, mem ? mem : stderr);
    if (mem)
        fclose(mem);
    if (!fresh) {
        cx_log(CX_LOG_ERR, "Reload failed, keeping the running configuration. %s", tmp ? tmp : "");
        free(tmp);
        return;
    }
    free(tmp);
    if (cx_broker_reload(b, fresh) != CX_OK)
        cx_log(CX_LOG_ERR, "Out of memory applying the reloaded configuration.");
    cx_config_free(fresh);
    apply_logging(live, cli);
    cx_alloc_set_limit(live->memory_limit);
}

/* Stops and frees everything main started, in reverse order. */
static void teardown(cx_broker_t *b, cx_config_t *cfg)
{
    cx_broker_stop(b);
    cx_broker_free(b);
    if (cfg->pid_file)
        unlink(cfg->pid_file);
    cx_config_free(cfg);
    cx_log_shutdown();
}

static int start_failed(cx_broker_t *b, cx_config_t *cfg, const char *err)
{
    /* Printed on stderr too unless the log already goes there: whatever log_type and
     * log_dest say, a broker that cannot start is never silent. */
    cx_log(CX_LOG_ERR, "Error: %s", err);
    if (!cx_log_enabled(CX_LOG_ERR) ||
        !(cfg->log_dest & (CX_LOGDEST_STDERR | CX_LOGDEST_STDOUT)))
        fprintf(stderr, "Error: %s\n", err);
    teardown(b, cfg);
    return 1;
}

int main(int argc, char **argv)
{
    cli_t cli = {0};
    int pr = parse_args(argc, argv, &cli);
    if (pr != 0)
        return pr > 0 ? 0 : 1;

    cx_config_t *cfg = load_config(&cli, stderr);
    if (!cfg)
        return 1;
    if (cli.test_config) {
        /* TLS files are read now too, so that a bad certificate or key is found here. */
        char terr[1024];
        for (size_t i = 0; i < cfg->listener_count; i++)
            if (cx_transport_check(&cfg->listeners[i], cfg, terr, sizeof terr) != CX_OK) {
                fprintf(stderr, "Error: %s\n", terr);
                cx_config_free(cfg);
                return 1;
            }
        printf("Configuration file is OK.\n");
        cx_config_free(cfg);
        return 0;
    }
    if (apply_logging(cfg, &cli) != CX_OK) {
        cx_config_free(cfg);
        return 1;
    }
    cx_alloc_set_limit(cfg->memory_limit);

    if (cli.daemon && daemonise() != CX_OK) {
        fprintf(stderr, "Error: cannot daemonise: %s\n", strerror(errno));
        return 1;
    }
    cx_log(CX_LOG_NOTICE, "culex version %s starting", CULEX_VERSION);
    if (cli.config_file)
        cx_log(CX_LOG_NOTICE, "Config loaded from %s.", cli.config_file);
    else
        cx_log(CX_LOG_NOTICE, "Using default config.");
    if (cfg->local_only)
        cx_log(CX_LOG_NOTICE, "Starting in local only mode. Connections will only be possible "
                              "from clients running on this machine.");

    /* Signals are handled by this thread with sigwait; every other thread blocks them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    sigaddset(&sigs, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A store file that reaches RLIMIT_FSIZE must fail its write (EFBIG), which the store
     * handles, instead of killing the broker. */
    signal(SIGXFSZ, SIG_IGN);

    char err[1024] = "";
    cx_broker_t *b = cx_broker_new(cfg, err, sizeof err);
    if (!b) {
        cx_log(CX_LOG_ERR, "Error: %s", err);
        fprintf(stderr, "Error: %s\n", err);
        cx_config_free(cfg);
        return 1;
    }
    if (cx_broker_open(b, err, sizeof err) != CX_OK)
        return start_failed(b, cfg, err);
    if (cfg->pid_file) {
        int rc = write_pid_file(cfg->pid_file);
        if (rc)
            cx_log(CX_LOG_WARNING, "Unable to write pid file %s: %s.", cfg->pid_file,
                   cx_strerror(rc));
    }
    int rc = drop_privileges(cfg->user);
    if (rc)
        cx_log(CX_LOG_WARNING, "Unable to drop privileges to '%s': %s.", cfg->user,
               cx_strerror(rc));
    if (cx_broker_start(b, err, sizeof err) != CX_OK)
        return start_failed(b, cfg, err);

    for (;;) {
        /* Woken once a second without a signal for the store's housekeeping (autosave,
         * compaction, retry after a failure), which needs the workers parked. */
        struct timespec second = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &second);
        if (sig < 0) {
            cx_persist_maintain(b);
            continue;
        }
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (sig == SIGHUP)
            reload(b, cfg, &cli);
        else if (sig == SIGUSR2)
            cx_broker_dump_subscriptions(b);
        else if (sig == SIGUSR1)
            cx_persist_save(b);
        else if (sig == SIGRTMIN)
            cx_log_reopen();
    }
    cx_log(CX_LOG_NOTICE, "culex version %s terminating", CULEX_VERSION);
    teardown(b, cfg);
    return 0;
}
