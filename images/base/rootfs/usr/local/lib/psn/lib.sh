# Shell helpers for PSN entrypoints: `. /usr/local/lib/psn/lib.sh`.
# shellcheck shell=sh
# Secrets come from files under /run/secrets (Docker secrets or 0600 bind mounts), never from
# environment variables or command lines, and are never printed.

PSN_SECRETS_DIR="${PSN_SECRETS_DIR:-/run/secrets}"

psn_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
psn_die() { psn_log "ERROR: $*"; exit 1; }

# psn_secret NAME: print the secret NAME (first line, no trailing newline); fail if missing.
psn_secret() {
    _f="$PSN_SECRETS_DIR/$1"
    [ -r "$_f" ] || psn_die "secret $1 is missing: mount it as $_f (docker secret or 0600 file)"
    head -n 1 "$_f" | tr -d '\r\n'
}

# psn_has_secret NAME: true when the secret file exists and is readable.
psn_has_secret() { [ -r "$PSN_SECRETS_DIR/$1" ]; }

# psn_render SRC DST: copy the template SRC to DST (mode 0640), replacing every
# @@secret:NAME@@ by the secret NAME (first line). Secrets stay out of the mounted
# configuration; the rendered file lives in the container only (e.g. under /run).
psn_render() {
    _src="$1"; _dst="$2"
    _names="$(grep -o '@@secret:[A-Za-z0-9_.-]*@@' "$_src" | sort -u | sed 's/^@@secret://; s/@@$//')"
    _work="$(mktemp "${_dst}.XXXXXX")"
    chmod 0640 "$_work"
    cat "$_src" >"$_work"
    for _n in $_names; do
        psn_has_secret "$_n" || {
            rm -f "$_work" "$_work.next"
            psn_die "$_src needs the secret $_n: mount it as $PSN_SECRETS_DIR/$_n"
        }
        # awk, not sed: the value may hold any character; index/substr do no regex matching.
        PSN_VALUE="$(psn_secret "$_n")" awk -v key="@@secret:$_n@@" '
            { out = ""; line = $0
              while ((i = index(line, key)) > 0) {
                  out = out substr(line, 1, i - 1) ENVIRON["PSN_VALUE"]
                  line = substr(line, i + length(key)) }
              print out line }' "$_work" >"$_work.next"
        cat "$_work.next" >"$_work"
        rm -f "$_work.next"
    done
    mv "$_work" "$_dst"
}

# psn_render_dir SRCDIR DSTDIR: psn_render every regular file of SRCDIR into DSTDIR.
psn_render_dir() {
    [ -d "$1" ] || return 0
    mkdir -p "$2"
    for _f in "$1"/*; do
        [ -f "$_f" ] || continue
        psn_render "$_f" "$2/${_f##*/}"
    done
}
