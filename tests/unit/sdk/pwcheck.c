/* pwcheck — checks one user's password against a password file with the SDK verifier, for
 * the culex_passwd / mosquitto_passwd interop test.
 *
 *     pwcheck FILE USERNAME PASSWORD
 *
 * Exit status: 0 the password matches, 1 it does not, 2 no such user or an error. */
#include <culex/sdk/password.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: pwcheck FILE USERNAME PASSWORD\n");
        return 2;
    }
    FILE *fp = fopen(argv[1], "r");
    if (!fp) {
        perror(argv[1]);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0, ulen = strlen(argv[2]);
    ssize_t n;
    int rc = 2;
    while ((n = getline(&line, &cap, fp)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strncmp(line, argv[2], ulen) != 0 || line[ulen] != ':')
            continue;
        int v = culex_pw_verify(line + ulen + 1, argv[3], strlen(argv[3]));
        if (v < 0) {
            fprintf(stderr, "pwcheck: %s: %s\n", argv[2], culex_pw_strerror(v));
            rc = 2;
        } else {
            rc = v == 1 ? 0 : 1;
        }
        break;
    }
    if (rc == 2 && n < 0)
        fprintf(stderr, "pwcheck: no user %s in %s\n", argv[2], argv[1]);
    free(line);
    fclose(fp);
    return rc;
}
