#!/usr/bin/env bash
# Make a local Debian bookworm + Python 3.11 base image without any container registry.
#
# Why: the Dockerfile builds FROM python:3.11-slim by default, which needs a registry
# (Docker Hub). On a machine that only reaches Debian package mirrors (and PyPI), this
# script bootstraps a minimal Debian rootfs with debootstrap and imports it as an image,
# so the shipcord image can be built from it instead:
#
#   sudo docker/make-base-image.sh --clean-tag shipcord-base:bookworm-clean
#   docker build --build-arg BASE_IMAGE=shipcord-base:bookworm \
#       --build-arg RUNTIME_BASE_IMAGE=shipcord-base:bookworm-clean -t shipcord:local .
#
# Bookworm's python3 is 3.11, the version python:3.11-slim carries; the Dockerfile only
# uses `python3` and `python3 -m venv`, which both bases provide.
#
# Usage: docker/make-base-image.sh [--force] [--no-host-ca] [--clean-tag TAG] [IMAGE_TAG]
#   IMAGE_TAG         default shipcord-base:bookworm
#   --force           rebuild even when the images already exist (default: do nothing then)
#   --no-host-ca      do not copy this machine's locally added CA certificates (see below)
#   --clean-tag TAG   also import the same rootfs, before any host CA is added, as TAG: the
#                     runtime stage's base, so the shipcord image ships no host CA
# Environment:
#   DEBIAN_MIRROR  default: the first deb.debian.org-style URI apt uses on this machine
#                  (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list), else
#                  http://deb.debian.org/debian
#   SUITE          default bookworm
#   WORKDIR        where the rootfs is assembled; default a fresh mktemp dir, removed on exit
#
# Host CA certificates: when /usr/local/share/ca-certificates/ holds certificates (a
# corporate or sandbox TLS-intercepting proxy's CA), they are added to the image's trust
# store, so `pip install` inside `docker build` reaches PyPI through that proxy. (Debian's
# pip already reads the system bundle; PIP_CERT also covers a pip upgraded from PyPI,
# which would otherwise use its own certifi copy.) This is
# machine-specific by design and lives only in this local base image, never in the
# Dockerfile. Images built FROM it trust that CA too; pass --no-host-ca when not wanted.
# The shipcord image uses it for its build stage only: its runtime stage is FROM the
# --clean-tag image, the same rootfs (the same Python, which the copied venv needs)
# without the host's certificates or PIP_CERT.
#
# Needs a running Docker engine; to build, also root (debootstrap, chroot) and debootstrap.
# Idempotent: re-running with the image present is a no-op unless --force (and then needs
# neither root nor debootstrap).
set -euo pipefail

force=0
host_ca=1
tag=""
clean_tag=""
while (($# > 0)); do
    case "$1" in
        --force) force=1 ;;
        --no-host-ca) host_ca=0 ;;
        --clean-tag)
            if (($# < 2)); then
                echo "--clean-tag needs an image tag" >&2
                exit 2
            fi
            clean_tag="$2"
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "unknown option: $1" >&2
            exit 2
            ;;
        *) tag="$1" ;;
    esac
    shift
done
tag="${tag:-shipcord-base:bookworm}"
suite="${SUITE:-bookworm}"

if ! command -v docker >/dev/null; then
    echo "make-base-image.sh: docker not found (apt-get install docker.io)" >&2
    exit 1
fi
if ! docker info >/dev/null 2>&1; then
    echo "make-base-image.sh: no Docker engine answers (start dockerd)" >&2
    exit 1
fi

# Checked before the build's own needs, so that an existing image needs neither root nor
# debootstrap.
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
if [[ $force -eq 0 ]] && image_exists "$tag" && { [[ -z "$clean_tag" ]] || image_exists "$clean_tag"; }; then
    echo "$tag${clean_tag:+ and $clean_tag} already exist (use --force to rebuild)"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "make-base-image.sh: needs root (debootstrap and chroot)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "make-base-image.sh: debootstrap not found (apt-get install debootstrap)" >&2
    exit 1
fi

# The mirror apt already uses here: the only Debian source reachable on a locked-down machine.
detect_mirror() {
    local uri
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
    if [[ -z "$uri" ]]; then
        uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{for (i = 2; i <= NF; i++) if ($i !~ /^\[/) {print $i; exit}}' |
            grep -E '/debian/?$' | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${DEBIAN_MIRROR:-$(detect_mirror)}"

if [[ -n "${WORKDIR:-}" ]]; then
    workdir="$WORKDIR"
    mkdir -p "$workdir"
else
    workdir=$(mktemp -d /tmp/shipcord-base.XXXXXX)
    trap 'rm -rf --one-file-system "$workdir"' EXIT
fi
rootfs="$workdir/rootfs"
rm -rf --one-file-system "$rootfs"

echo "debootstrap $suite from $mirror into $rootfs"
# minbase: only Essential + apt. python3-venv brings ensurepip's pip wheel for `-m venv`;
# python3-pip is there for parity with python:3.11-slim, which ships pip.
debootstrap --variant=minbase \
    --include=ca-certificates,python3,python3-venv,python3-pip \
    "$suite" "$rootfs" "$mirror"

# The security and updates suites, as on the host, for later `apt-get upgrade` in the image.
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian*}/debian-security $suite-security main
EOF

# Slim it like the official slim images: no apt lists, docs, man pages or caches.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
find "$rootfs/usr/lib/python3" -name __pycache__ -type d -prune -exec rm -rf {} +

# Imports the rootfs as image $1; further arguments are extra `docker import` options.
import_rootfs() {
    local image="$1"
    shift
    # --numeric-owner: the image's /etc/passwd, not the host's, names the files' owners.
    tar --numeric-owner -C "$rootfs" -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            "$@" \
            --change 'CMD ["python3"]' \
            --message "debootstrap --variant=minbase $suite + python3 (shipcord docker/make-base-image.sh)" \
            - "$image"
}

# The clean image first: the same rootfs before any of this machine's certificates.
if [[ -n "$clean_tag" ]]; then
    import_rootfs "$clean_tag"
fi

pip_env=()
shopt -s nullglob
host_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
if [[ $host_ca -eq 1 && ${#host_cas[@]} -gt 0 ]]; then
    echo "adding host CA certificates: ${host_cas[*]}"
    cp "${host_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates
    pip_env=(--change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt")
fi
import_rootfs "$tag" "${pip_env[@]}"

docker image ls "$tag"
[[ -z "$clean_tag" ]] || docker image ls "$clean_tag"
