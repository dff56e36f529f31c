#!/usr/bin/env bash
# Build the PSN base image (Debian 12 "bookworm", minbase) and import it into Docker.
#
#   images/base/build.sh [--rebuild] TAG          e.g. images/base/build.sh psn/base:0.1.0
#
# 1. debootstrap --variant=minbase bookworm, plus this directory's rootfs/ (apt and dpkg
#    settings, the psn-install/psn-packages/psn-user helpers, /usr/local/lib/psn/lib.sh);
# 2. sources for bookworm, bookworm-updates and bookworm-security; imported as a stage image;
# 3. in a container of that stage: security/point updates applied, tini, ca-certificates and
#    curl installed (policy-rc.d exits 101 meanwhile), apt lists and caches removed;
# 4. the container is exported and imported again as TAG: one layer, nothing left over.
# An existing TAG built from the same files (label io.psn.inputs) is kept unless --rebuild is
# given. Prints `cached` or `built` on stdout, everything else on stderr.
# Needs root (debootstrap) and a Docker engine.
#
# Environment: PSN_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#              PSN_DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
suite=bookworm
mirror="${PSN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${PSN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
base_packages=(tini ca-certificates curl)

rebuild=0
if [ "${1:-}" = --rebuild ]; then
    rebuild=1
    shift
fi
[ "$#" -eq 1 ] || {
    echo "usage: $0 [--rebuild] TAG" >&2
    exit 2
}
tag="$1"

log() { printf 'base: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# The image carries a digest of this directory: an edit here means a new base.
inputs="$(cd "$here" && find . -type f -printf '%m %p\n' | LC_ALL=C sort | while read -r mode f; do
    printf '%s ' "$mode"
    sha256sum "$f"
done | sha256sum | cut -c1-64)"
have="$(docker image inspect -f '{{index .Config.Labels "io.psn.inputs"}}' "$tag" 2>/dev/null || true)"
if [ "$rebuild" -eq 0 ] && [ "$have" = "$inputs" ]; then
    log "$tag is up to date (use --rebuild to build it again)"
    echo cached
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
docker info >/dev/null 2>&1 || die "no Docker engine answers (see .ci/docker-engine.sh)"

work="$(mktemp -d /var/tmp/psn-base.XXXXXX)"
stage="psn/base-stage:$$"
container="psn-base-build-$$"
cleanup() {
    docker rm -f "$container" >/dev/null 2>&1 || true
    docker rmi "$stage" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

start=$SECONDS
log "debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (last lines above)"
}

root="$work/rootfs"
cp -a "$here/rootfs/." "$root/"
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# debootstrap unpacked its packages before our dpkg excludes existed: apply them now.
find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/groff/* "$root"/usr/share/info/* \
    "$root"/usr/share/lintian/* "$root"/usr/share/linda/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# Nothing of the build host stays in the image.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* \
    "$root"/tmp/* "$root"/var/tmp/* "$root"/debootstrap
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

log "importing the stage image"
tar -C "$root" --numeric-owner -c . | docker import - "$stage" >/dev/null

log "applying updates and installing ${base_packages[*]}"
docker run --name "$container" --network bridge "$stage" /bin/sh -c '
    set -e
    export DEBIAN_FRONTEND=noninteractive
    printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    apt-get update -q
    apt-get -y -q upgrade
    /usr/local/sbin/psn-install "$@"
    rm -f /usr/sbin/policy-rc.d
' psn-base "${base_packages[@]}" >"$work/update.log" 2>&1 || {
    tail -n 30 "$work/update.log" >&2
    die "updating the base failed (last lines above)"
}

log "exporting as $tag"
docker export "$container" | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL io.psn.inputs=$inputs io.psn.packages=/usr/share/psn/packages.txt" \
    - "$tag" >/dev/null
log "$tag built in $((SECONDS - start))s ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
echo built
