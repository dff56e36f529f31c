#!/bin/sh
# Run inside the postgres container (docker exec -i ... sh -s -- USER DB...), as the image's
# postgres user: makes the superuser's and USER's passwords those of the Docker secrets, creates
# USER and its databases when missing. Passwords are read from /run/secrets inside the container
# and given to psql as variables: they never appear in an argument, the environment or a log.
# Prints "CHANGED: ..." for each change.
set -eu
user="$1"
shift
secrets=/run/secrets
sql() { psql -h /var/run/postgresql -U postgres -d postgres -XqtA -v ON_ERROR_STOP=1 "$@"; }

# Whether USER logs in over TCP with the password in FILE (a throwaway 0600 .pgpass).
logs_in() {
    pass="$(mktemp)"
    pw="$(head -n 1 "$2" | tr -d '\r\n' | sed 's/[\\:]/\\&/g')"
    printf '127.0.0.1:*:*:%s:%s\n' "$1" "$pw" >"$pass"
    rc=0
    PGPASSFILE="$pass" psql -h 127.0.0.1 -U "$1" -d postgres -XqtAc 'SELECT 1' >/dev/null 2>&1 || rc=$?
    rm -f "$pass"
    return "$rc"
}

# Set ROLE's password from FILE (CREATE when missing); the statement is never logged.
set_password() {
    verb="$1" role="$2" file="$3" options="$4"
    sql -v role="$role" <<SQL
SET log_statement = 'none';
SET log_min_error_statement = panic;
\\set pw \`head -n 1 $file | tr -d '\\r\\n'\`
$verb ROLE :"role" $options PASSWORD :'pw';
SQL
}

if ! logs_in postgres "$secrets/postgres_password"; then
    set_password ALTER postgres "$secrets/postgres_password" ""
    echo "CHANGED: password of postgres"
fi

exists="$(echo "SELECT count(*) FROM pg_roles WHERE rolname = :'role';" | sql -v role="$user")"
if [ "$exists" = 0 ]; then
    set_password CREATE "$user" "$secrets/postgres_db_password" "LOGIN"
    echo "CHANGED: user $user created"
elif ! logs_in "$user" "$secrets/postgres_db_password"; then
    set_password ALTER "$user" "$secrets/postgres_db_password" "LOGIN"
    echo "CHANGED: password of $user"
fi

for db in "$@"; do
    found="$(echo "SELECT count(*) FROM pg_database WHERE datname = :'db';" | sql -v db="$db")"
    if [ "$found" = 0 ]; then
        echo "CREATE DATABASE :\"db\" OWNER :\"role\" ENCODING 'UTF8' TEMPLATE template0;" \
            | sql -v db="$db" -v role="$user"
        echo "CHANGED: database $db created"
    fi
done
