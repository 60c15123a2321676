#!/bin/sh
# test_culex_passwd.sh — culex_passwd behaviour and interop with Debian's Mosquitto 2.0:
#   - a file written by /usr/bin/mosquitto_passwd is verified by the SDK (pwcheck);
#   - a file written by culex_passwd is accepted by /usr/sbin/mosquitto (mosquitto_pub with
#     good and bad passwords against a broker on a free loopback port, stopped by its PID);
#   - -c, -b, -D, -U, -H, -I, prompts, errors, atomic update keeping mode and other lines.
# Usage: test_culex_passwd.sh CULEX_PASSWD PWCHECK
# The Mosquitto parts are skipped (with a note) when Mosquitto is not installed.
set -u
CP=$1
PWCHECK=$2
T=$(mktemp -d /tmp/cx_passwd.XXXXXX)
BROKER_PID=
pass=0
fail=0

cleanup() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
    fi
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { # check DESCRIPTION COMMAND...  (expects success)
    d=$1; shift
    if "$@" >"$T/out" 2>&1; then ok "$d"; else bad "$d"; sed 's/^/    /' "$T/out"; fi
}
check_fails() { # check_fails DESCRIPTION EXPECTED-RC COMMAND...
    d=$1; want=$2; shift 2
    "$@" >"$T/out" 2>&1
    rc=$?
    if [ "$rc" = "$want" ]; then ok "$d"; else bad "$d (rc $rc, want $want)"; sed 's/^/    /' "$T/out"; fi
}
check_out() { # check_out DESCRIPTION TEXT: the last command's output contains TEXT
    if grep -qF -- "$2" "$T/out"; then ok "$1"; else bad "$1: no '$2' in:"; sed 's/^/    /' "$T/out"; fi
}
mode_of() { stat -c %a "$1"; }

# ---- culex_passwd behaviour ----
F=$T/pw
check "-c -b creates the file" "$CP" -c -b "$F" alice "secret one"
[ "$(mode_of "$F")" = 600 ] && ok "new file has mode 600" || bad "new file mode $(mode_of "$F")"
grep -q '^alice:\$7\$1000\$[A-Za-z0-9+/]\{16\}\$[A-Za-z0-9+/]\{86\}==$' "$F" &&
    ok "default is \$7\$, 1000 iterations, 12-byte salt" || { bad "default format"; cat "$F"; }
check "-b adds a user" "$CP" -b "$F" bob "p:w d"
check "-H argon2id" "$CP" -H argon2id -b "$F" carol "c4rol"
grep -q '^carol:\$argon2id\$v=19\$m=47104,t=1,p=1\$' "$F" && ok "argon2id parameters" ||
    { bad "argon2id parameters"; cat "$F"; }
check "-I 101" "$CP" -I 101 -b "$F" dave "d"
grep -q '^dave:\$7\$101\$' "$F" && ok "-I sets iterations" || bad "-I sets iterations"
check "pwcheck alice" "$PWCHECK" "$F" alice "secret one"
check "pwcheck bob (colon, space)" "$PWCHECK" "$F" bob "p:w d"
check "pwcheck carol (argon2id)" "$PWCHECK" "$F" carol "c4rol"
check "pwcheck dave" "$PWCHECK" "$F" dave "d"
check_fails "wrong password refused" 1 "$PWCHECK" "$F" alice "secret two"

chmod 640 "$F"
printf '# a comment line\n' >>"$F"
before=$(grep -c '' "$F")
check "update alice" "$CP" -b "$F" alice "new secret"
[ "$(mode_of "$F")" = 640 ] && ok "update keeps the mode" || bad "mode now $(mode_of "$F")"
[ "$(grep -c '' "$F")" = "$before" ] && ok "update replaces in place" || bad "line count changed"
head -n 1 "$F" | grep -q '^alice:' && ok "alice stays first" || bad "alice moved"
grep -q '^# a comment line$' "$F" && ok "comments kept" || bad "comment lost"
check "pwcheck alice new" "$PWCHECK" "$F" alice "new secret"
check_fails "old password refused" 1 "$PWCHECK" "$F" alice "secret one"
ls "$T" | grep -q '^pw\.' && bad "temporary file left behind" || ok "no temporary file left"

check "-D deletes" "$CP" -D "$F" dave
grep -q '^dave:' "$F" && bad "dave still there" || ok "dave gone"
check_fails "-D unknown user" 1 "$CP" -D "$F" nobody
check_out "-D unknown user message" "Warning: User nobody not found in password file."
check_fails "-c and -D" 1 "$CP" -c -D "$F" alice
check_out "-c -D message" "Error: -c and -D cannot be used together."
check_fails "username with ':'" 1 "$CP" -b "$F" "a:b" pw
check_out "':' message" "Error: Username must not contain the ':' character."
check_fails "username starting with '#'" 1 "$CP" -b "$F" "#x" pw
check_out "'#' message" "Error: Username must not start with '#'."
check_fails "-b on a missing file" 1 "$CP" -b "$T/missing" u p
check_out "missing file message" "Error: Unable to open password file $T/missing. No such file or directory."
check_fails "-I 0" 1 "$CP" -I 0 -b "$F" u p
check_out "-I message" "Error: Number of iterations must be > 0."
check_fails "-H unknown" 1 "$CP" -H md5 -b "$F" u p
check_out "-H message" "Error: Unknown hash type 'md5'"
check_fails "wrong argument count" 1 "$CP" -b "$F" u
check_out "usage shown" "Usage: culex_passwd"

# prompts (stdin not a terminal: two lines are read)
printf 'typed pw\ntyped pw\n' | "$CP" "$F" erin >"$T/out" 2>&1 && ok "password from stdin" || bad "password from stdin"
check "pwcheck erin" "$PWCHECK" "$F" erin "typed pw"
printf 'one\ntwo\n' | "$CP" "$F" erin >"$T/out" 2>&1
[ $? = 1 ] && ok "mismatch refused" || bad "mismatch accepted"
check_out "mismatch message" "Error: Passwords do not match."
check "pwcheck erin unchanged" "$PWCHECK" "$F" erin "typed pw"

# prompts on a terminal: no echo
if command -v python3 >/dev/null 2>&1; then
    python3 - "$CP" "$F" >"$T/out" 2>&1 <<'EOF'
import os, pty, sys, time
cp, f = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cp, [cp, f, "tty-user"])
out = b""
def expect(s):
    global out
    end = time.time() + 10
    while s not in out and time.time() < end:
        out += os.read(fd, 1024)
expect(b"Password: "); os.write(fd, b"hidden-pw\n")
expect(b"Reenter password: "); os.write(fd, b"hidden-pw\n")
try:
    while True:
        chunk = os.read(fd, 1024)
        if not chunk: break
        out += chunk
except OSError:
    pass
_, st = os.waitpid(pid, 0)
sys.exit(0 if os.WEXITSTATUS(st) == 0 and b"hidden-pw" not in out else 1)
EOF
    if [ $? = 0 ]; then ok "terminal prompt without echo"; else bad "terminal prompt"; cat "$T/out"; fi
    check "pwcheck tty-user" "$PWCHECK" "$F" tty-user "hidden-pw"
fi

# -U: plain text to hashes; hashes and comments left alone; a corrupt file untouched
U=$T/plain
hashed=$(grep '^bob:' "$F" | cut -d: -f2-)
printf '# users\nu1:plain one\nu2:with:colon\n\nbob:%s\n' "$hashed" >"$U"
check "-U" "$CP" -U "$U"
check "pwcheck u1" "$PWCHECK" "$U" u1 "plain one"
check "pwcheck u2 (':' in password)" "$PWCHECK" "$U" u2 "with:colon"
check "already hashed entry kept" "$PWCHECK" "$U" bob "p:w d"
grep -q "^bob:$hashed\$" "$U" && ok "hash unchanged" || bad "hash changed"
grep -q '^# users$' "$U" && ok "-U keeps comments" || bad "-U lost comment"
printf 'u1:x\nbroken line\n' >"$T/corrupt"
check_fails "-U corrupt file" 1 "$CP" -U "$T/corrupt"
check_out "corrupt message" "Error: Corrupt password file at line 2."
grep -q '^u1:x$' "$T/corrupt" && ok "corrupt file untouched" || bad "corrupt file changed"

# ---- interop with Debian's Mosquitto ----
tested_mosq=0
if [ -x /usr/bin/mosquitto_passwd ]; then
    tested_mosq=1
    M=$T/mosq
    check "mosquitto_passwd -c" /usr/bin/mosquitto_passwd -c -b "$M" alice "secret one"
    check "mosquitto_passwd -b" /usr/bin/mosquitto_passwd -b "$M" bob "p w"
    if /usr/bin/mosquitto_passwd -H sha512 -b "$M" old "legacy" >/dev/null 2>&1; then
        check "mosquitto \$6\$ verified" "$PWCHECK" "$M" old "legacy"
        check_fails "mosquitto \$6\$ wrong password" 1 "$PWCHECK" "$M" old "legacy!"
    fi
    if /usr/bin/mosquitto_passwd -I 5000 -b "$M" iter "pw5000" >/dev/null 2>&1; then
        check "mosquitto -I 5000 verified" "$PWCHECK" "$M" iter "pw5000"
    fi
    check "mosquitto \$7\$ verified (alice)" "$PWCHECK" "$M" alice "secret one"
    check "mosquitto \$7\$ verified (bob)" "$PWCHECK" "$M" bob "p w"
    check_fails "mosquitto \$7\$ wrong password" 1 "$PWCHECK" "$M" alice "secret"
    # culex_passwd edits a mosquitto_passwd file
    check "culex_passwd updates a mosquitto file" "$CP" -b "$M" carol "from culex"
    check "its own entries still verify" "$PWCHECK" "$M" bob "p w"
    check "-D on a mosquitto file" "$CP" -D "$M" alice
    [ "$(grep -c '' "$M")" -ge 2 ] && ok "other entries kept" || bad "entries lost"
else
    echo "# skip: /usr/bin/mosquitto_passwd not installed"
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -x /usr/sbin/mosquitto ] && command -v mosquitto_pub >/dev/null 2>&1 &&
    command -v python3 >/dev/null 2>&1; then
    tested_mosq=1
    P=$T/forbroker
    "$CP" -c -b "$P" alice "s3cret" >/dev/null
    "$CP" -b "$P" bob "pa ss:word" >/dev/null
    "$CP" -I 101 -b "$P" low "pw101" >/dev/null
    "$CP" -I 200000 -b "$P" high "pw200k" >/dev/null
    # Debian's mosquitto drops privileges (user mosquitto) before it reads the file, and
    # culex_passwd creates files with mode 0600: let that user read this one.
    chmod 755 "$T"
    chmod 644 "$P"
    PORT=$(free_port)
    cat >"$T/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous false
password_file $P
EOF
    /usr/sbin/mosquitto -c "$T/mosquitto.conf" >"$T/broker.log" 2>&1 &
    BROKER_PID=$!
    i=0
    while [ $i -lt 50 ] && ! grep -q "running" "$T/broker.log"; do
        sleep 0.1
        i=$((i + 1))
    done
    pub() { mosquitto_pub -h 127.0.0.1 -p "$PORT" -q 1 -t interop/test -m hello "$@"; }
    check "mosquitto accepts alice" pub -u alice -P "s3cret"
    check "mosquitto accepts bob" pub -u bob -P "pa ss:word"
    check "mosquitto accepts -I 101 entry" pub -u low -P "pw101"
    check "mosquitto accepts -I 200000 entry" pub -u high -P "pw200k"
    check_fails "mosquitto refuses a wrong password" 5 pub -u alice -P "s3cret!"
    check_fails "mosquitto refuses an unknown user" 5 pub -u mallory -P "s3cret"
    if ! grep -q "running" "$T/broker.log"; then
        bad "mosquitto did not start"
        cat "$T/broker.log"
    elif grep -q "removing entry" "$T/broker.log"; then
        bad "mosquitto dropped entries"
        grep "removing entry" "$T/broker.log"
    else
        ok "mosquitto loaded every entry"
    fi
    kill "$BROKER_PID"
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
else
    echo "# skip: /usr/sbin/mosquitto or mosquitto_pub not installed"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ] || exit 1
exit 0
