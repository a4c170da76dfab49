#!/usr/bin/env bash
# Brings up a Docker Engine for tests/harness/test_docker.py and makes the local base image the
# project's Dockerfile is built on there (no container registry is reachable here, only PyPI and
# Debian). Idempotent: each step is skipped when its result is already in place.
#
#   1. docker.io + mmdebstrap from Debian, if missing;
#   2. dockerd in the background (overlay2, log in $DOCKER_LOG), if `docker info` fails;
#   3. the image $DISCO_TEST_BASE_IMAGE, standing in for the pytorch/pytorch image the real build
#      starts from: a Debian bookworm rootfs (mmdebstrap minbase, python3.11) with a venv
#      /opt/venv holding pip, torch and torchvision, `docker import`ed. Those packages are
#      hard-linked from the project's venv (`make install` made it; same python3.11 ABI), which
#      skips re-unpacking ~5 GB of CUDA wheels; no CPU-only torchvision is reachable here.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
pinned() { grep -E "^$1==" "$ROOT/requirements.lock" | cut -d= -f3; }
# Named after the pins, so a lock bump builds a new base instead of reusing a stale one.
BASE_IMAGE="${DISCO_TEST_BASE_IMAGE:-disco-bench-test-base:bookworm-torch$(pinned torch)-tv$(pinned torchvision)}"
DOCKER_LOG="${DOCKER_LOG:-/var/log/dockerd-ci.log}"
VENV="${VENV:-$ROOT/.venv}"
SITE_IN_IMAGE="opt/venv/lib/python3.11/site-packages"

log() { printf '[setup-docker %3ds] %s\n' "$SECONDS" "$*"; }
die() { echo "setup-docker: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" -eq 0 ] || die "$* needs root; rerun as root"; }

install_packages() {
    if command -v dockerd >/dev/null && command -v mmdebstrap >/dev/null; then
        return
    fi
    need_root "installing docker.io and mmdebstrap"
    log "installing docker.io and mmdebstrap from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io mmdebstrap >/dev/null
}

start_daemon() {
    if docker info >/dev/null 2>&1; then
        log "docker engine already running"
        return
    fi
    need_root "starting dockerd"
    log "starting dockerd (log: $DOCKER_LOG)"
    mkdir -p "$(dirname "$DOCKER_LOG")"
    # setsid: the daemon outlives this script and no Ctrl-C sent to the CI shell reaches it.
    setsid dockerd --storage-driver=overlay2 >>"$DOCKER_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            log "docker engine is up"
            return
        fi
        sleep 1
    done
    tail -n 20 "$DOCKER_LOG" >&2
    die "dockerd did not come up within 60 s; its log is $DOCKER_LOG"
}

check_venv() {
    [ -x "$VENV/bin/python" ] || die "no project venv at $VENV; run \`make install\` first"
    local have want
    for dist in torch torchvision; do
        have="$("$VENV/bin/python" -c "from importlib.metadata import version; print(version('$dist'))" 2>/dev/null || true)"
        want="$(pinned "$dist")"
        [ "${have%%+*}" = "$want" ] || die "$VENV has $dist ${have:-(none)}, requirements.lock pins $want; run \`make install\`"
    done
}

# Hard-links (copies across file systems) the files of the named distributions and of everything
# they require, per their installed metadata, from the venv's site-packages into $1.
link_distributions() {
    "$VENV/bin/python" - "$@" <<'PY'
import os, shutil, site, sys
from importlib.metadata import distributions
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

target, roots = sys.argv[1], sys.argv[2:]
source = site.getsitepackages()[0]
installed = {canonicalize_name(d.metadata["Name"]): d for d in distributions(path=[source])}
wanted, seen, todo = set(), set(), [(canonicalize_name(name), "") for name in roots]
while todo:  # (distribution, extra) pairs: torch needs cuda-toolkit[cudart,cublas,...]
    name, extra = todo.pop()
    if (name, extra) in seen:
        continue
    if name not in installed:
        sys.exit(f"setup-docker: {name} is required but not installed in {source}")
    seen.add((name, extra))
    wanted.add(name)
    for text in installed[name].requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
            dep = canonicalize_name(requirement.name)
            todo += [(dep, "")] + [(dep, canonicalize_name(x)) for x in requirement.extras]
for name in sorted(wanted):
    for entry in installed[name].files or []:
        src, dst = os.path.join(source, entry), os.path.join(target, entry)
        if entry.parts[0] == ".." or not os.path.isfile(src):
            continue  # console scripts outside site-packages
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
print(f"linked {len(wanted)} distributions: {' '.join(sorted(wanted))}", file=sys.stderr)
PY
}

make_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE already present"
        return
    fi
    need_root "building the base image (mmdebstrap)"
    check_venv
    log "mmdebstrap bookworm minbase + python3 + /opt/venv with pip torch torchvision | docker import"
    local build_log
    build_log="$(mktemp /tmp/disco-base-image.XXXXXX.log)"
    # The CA bundle: this host reaches PyPI through a TLS proxy whose CA only the host's bundle
    # has, and the image build's pip (network host) must trust it too.
    # force-unsafe-io: no fsync per unpacked file; a crash here just means rebuilding.
    if ! mmdebstrap --variant=minbase --format=tar --include=python3,python3-venv,ca-certificates \
        --dpkgopt=force-unsafe-io \
        --customize-hook='chroot "$1" python3 -m venv --without-pip /opt/venv' \
        --customize-hook="VENV='$VENV' bash '$ROOT/.ci/setup-docker.sh' --link-into \"\$1/$SITE_IN_IMAGE\" pip torch torchvision" \
        --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"' \
        bookworm - 2>"$build_log" |
        docker import \
            --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
            --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
            --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
            --change 'CMD ["python3"]' \
            - "$BASE_IMAGE" >/dev/null; then
        tail -n 20 "$build_log" >&2
        docker rmi "$BASE_IMAGE" >/dev/null 2>&1 || true  # a truncated import must not count as done
        die "building the base image failed; full log: $build_log"
    fi
    rm -f "$build_log"
    if ! docker run --rm --network none "$BASE_IMAGE" python3 -c 'import torch, torchvision, pip'; then
        docker rmi "$BASE_IMAGE" >/dev/null
        die "the base image cannot import torch/torchvision/pip (removed it again)"
    fi
    log "base image $BASE_IMAGE ready ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.2f GB", $1/1e9}'))"
}

if [ "${1:-}" = "--link-into" ]; then  # the mmdebstrap customize hook, calling back into this file
    shift
    link_distributions "$@"
    exit
fi

install_packages
start_daemon
make_base_image
log "done"
