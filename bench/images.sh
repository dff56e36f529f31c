#!/usr/bin/env bash
# Benchmark of the images (issue 3 targets on a 2-core machine: cold build of everything
# <= 10 min, archive <= 1.5 GB, no apt lists or .deb caches in any image).
# Measures a cold build (--rebuild-base --no-cache), the archive size and each image's size,
# and writes them into the "images" section of docs/benchmarks.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
cd "$ROOT"
bash .ci/docker-engine.sh
PSN_SETUP_ONLY=1 ./deploy_psn.sh
bin="$ROOT/.venv/bin"
version="$("$bin/python" -c 'import psn; print(psn.__version__)')"
archive="images/dist/psn-images-$version.tar"

start=$(date +%s)
"$bin/deploy_psn" --skip-checksum images build --rebuild-base --no-cache
build_s=$(( $(date +%s) - start ))
start=$(date +%s)
"$bin/deploy_psn" --skip-checksum images save --out "$archive"
save_s=$(( $(date +%s) - start ))
archive_mb=$(( $(stat -c %s "$archive") / 1000000 ))

hygiene=ok
rows=""
for tag in $("$bin/python" -c "from pathlib import Path; from psn.images import image_tags; print(' '.join(image_tags(Path('.'), '$version')))"); do
  size_mb=$(( $(docker image inspect -f '{{.Size}}' "$tag") / 1000000 ))
  leftovers=$(docker run --rm --entrypoint sh "$tag" -c \
    'find /var/lib/apt/lists /var/cache/apt -type f ! -name lock ! -name "*.bin" 2>/dev/null | wc -l')
  [ "$leftovers" = 0 ] || hygiene="apt files left in $tag"
  rows+="| $tag | $size_mb |"$'\n'
done

section=$(mktemp)
cat > "$section" <<MD
## Images ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo))

Measured by \`bench/images.sh\`. Targets: cold build ≤ 600 s, archive ≤ 1500 MB, no apt lists
or .deb caches in any image.

| measure | value | target |
|---|---|---|
| cold build of every image (no cache, new base) | ${build_s} s | ≤ 600 s |
| saving the archive | ${save_s} s | |
| archive size (layers gzip'd, as the registry stores them) | ${archive_mb} MB | ≤ 1500 MB |
| apt lists / .deb caches in images | ${hygiene} | none |

| image | size (MB, uncompressed, shared base included) |
|---|---|
${rows}
MD
"$bin/python" bench/section.py images "$section"
rm -f "$section"
out=docs/benchmarks.md
echo "bench/images.sh: build ${build_s}s, archive ${archive_mb} MB, hygiene: $hygiene -> $out"
