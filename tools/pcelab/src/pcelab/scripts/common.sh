#!/bin/bash
# Illumio VEN @@SCRIPT_NAME@@, served by pcelab (the lab PCE) for pairing profile @@PROFILE_ID@@.
#
#   @@SCRIPT_NAME@@ --management-server HOST:PORT --activation-code CODE [--proxy-server HOST:PORT]
#                   [--ca-file FILE] [activate options: --name --role --app --env --loc --mode
#                   --enforcement_mode --visibility-level --log-traffic]
#
# Detects the OS and CPU from /etc/os-release and uname, asks the PCE which package of the pairing
# profile's VEN release fits, downloads it (TLS verified against the lab CA embedded below, or --ca-file),
# checks its sha256, installs it with dpkg or rpm, then @@FINAL_STEP_SUMMARY@@.
# Output is also appended to /var/log/illumio_install.log. The activation code is never logged. It may come
# from the documented install variable VEN_ACTIVATION_CODE instead of --activation-code, which keeps it out
# of the process list.
set -eu
set -o pipefail
# As the documented one-liner does: nothing this script creates is group-writable or readable by others.
umask 026

PROFILE_ID='@@PROFILE_ID@@'
# Tests set PCELAB_PAIR_ROOT to a scratch folder; on a real host it is unset and every path is the real one.
ROOT="${PCELAB_PAIR_ROOT:-}"
VEN_DIR="$ROOT/opt/illumio_ven"
# The documented install variable VEN_DATA_DIR moves the data directory; the script follows it.
DATA_DIR="$ROOT${VEN_DATA_DIR:-/opt/illumio_ven_data}"
WORK_DIR="$DATA_DIR/tmp"
LOG_FILE="$ROOT/var/log/illumio_install.log"
CTL="$VEN_DIR/illumio-ven-ctl"
CA_BUNDLE="$WORK_DIR/pce_ca.pem"
CODE_HEADER="$WORK_DIR/.activation_code_header"

MANAGEMENT_SERVER=""
ACTIVATION_CODE="${VEN_ACTIVATION_CODE:-}"
PROXY_SERVER=""
CA_FILE=""
ACTIVATE_OPTIONS=()

die() {
    echo "ERROR: $*" >&2
    exit 1
}

usage() {
    cat <<'USAGE_END'
usage: @@SCRIPT_NAME@@ --management-server HOST:PORT --activation-code CODE [--proxy-server HOST:PORT]
       [--ca-file FILE] [--name N] [--role R] [--app A] [--env E] [--loc L] [--mode M]
       [--enforcement_mode M] [--visibility-level V] [--log-traffic true|false]
USAGE_END
}

parse_arguments() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --management-server | -m) MANAGEMENT_SERVER="${2:-}"; shift 2 || die "$1 needs a value" ;;
            --activation-code | -a) ACTIVATION_CODE="${2:-}"; shift 2 || die "$1 needs a value" ;;
            --proxy-server | --proxy_server) PROXY_SERVER="${2:-}"; shift 2 || die "$1 needs a value" ;;
            --ca-file) CA_FILE="${2:-}"; shift 2 || die "$1 needs a value" ;;
            --name | -n | --role | --app | --env | --loc | --mode | --enforcement_mode | --enforcement-mode | \
                --visibility-level | --visibility_level | --log-traffic | --log_traffic)
                [ $# -ge 2 ] || die "$1 needs a value"
                ACTIVATE_OPTIONS+=("$1" "$2")
                shift 2
                ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option: $1 (see --help)" ;;
        esac
    done
    [ -n "$MANAGEMENT_SERVER" ] || die "--management-server HOST:PORT is required"
    [ -n "$ACTIVATION_CODE" ] || die "--activation-code (or VEN_ACTIVATION_CODE) is required"
    case "$ACTIVATION_CODE" in *[!0-9a-fA-F]*) die "the activation code must be hexadecimal" ;; esac
}

check_privileges() {
    # A scratch root (tests) needs no privileges; the real paths need root, as the PCE's own script does.
    if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
        die "run this script as root"
    fi
}

prepare_work_dir() {
    # The documented one-liner has already emptied the folder this script was downloaded into.
    mkdir -p "$WORK_DIR" "$DATA_DIR/etc" "$(dirname "$LOG_FILE")"
    # Keep a copy of all output for support, like the PCE's script does.
    exec > >(tee -a "$LOG_FILE") 2> >(tee -a "$LOG_FILE" >&2)
    echo "=== $(date -u '+%Y-%m-%dT%H:%M:%SZ') @@SCRIPT_NAME@@ (pairing profile $PROFILE_ID) ==="
}

write_ca_bundle() {
    if [ -n "$CA_FILE" ]; then
        [ -r "$CA_FILE" ] || die "cannot read --ca-file $CA_FILE"
        cp "$CA_FILE" "$CA_BUNDLE"
        return
    fi
    cat >"$CA_BUNDLE" <<'PCELAB_CA_END'
@@CA_PEM@@
PCELAB_CA_END
}

write_code_header() {
    # curl reads the header from a file so the code never shows in the process list.
    (umask 077 && printf 'X-Lab-Activation-Code: %s\n' "$ACTIVATION_CODE" >"$CODE_HEADER")
    trap 'rm -f "$CODE_HEADER"' EXIT
}

pce_curl() {
    local args=(--fail --silent --show-error --tlsv1.2 --cacert "$CA_BUNDLE" --header "@$CODE_HEADER")
    if [ -n "$PROXY_SERVER" ]; then
        args+=(--proxy "$PROXY_SERVER")
    fi
    curl "${args[@]}" "$@"
}

read_os_release_field() {
    # os-release is shell syntax by specification; read it in a subshell so it cannot change ours.
    # shellcheck source=/dev/null
    (. "$ROOT/etc/os-release" && printf '%s' "${!1:-}")
}

detect_platform() {
    [ -r "$ROOT/etc/os-release" ] || die "cannot read /etc/os-release to detect the operating system"
    OS_ID="$(read_os_release_field ID)"
    OS_VERSION="$(read_os_release_field VERSION_ID)"
    OS_LIKE="$(read_os_release_field ID_LIKE)"
    OS_NAME="$(read_os_release_field PRETTY_NAME)"
    ARCH="$(uname -m)"
    case " $OS_ID $OS_LIKE " in
        *" debian "* | *" ubuntu "*) PKG_TYPE=deb ;;
        *" rhel "* | *" fedora "* | *" centos "* | *" suse "* | *" sles "* | *" amzn "* | *" ol "*) PKG_TYPE=rpm ;;
        *)
            if command -v dpkg >/dev/null 2>&1; then PKG_TYPE=deb
            elif command -v rpm >/dev/null 2>&1; then PKG_TYPE=rpm
            else die "unsupported operating system '$OS_ID': neither dpkg nor rpm found"
            fi
            ;;
    esac
    echo "Detected [$ARCH][$OS_ID][$OS_VERSION] $OS_NAME ($PKG_TYPE)"
}

select_package() {
    local answer key value
    answer="$(pce_curl --get "https://$MANAGEMENT_SERVER/lab/ven-software/select" \
        --data-urlencode "profile_id=$PROFILE_ID" --data-urlencode "os_id=$OS_ID" \
        --data-urlencode "os_version=$OS_VERSION" --data-urlencode "os_like=$OS_LIKE" \
        --data-urlencode "arch=$ARCH" --data-urlencode "pkg_type=$PKG_TYPE")" ||
        die "the PCE has no VEN package for this host (see the message above)"
    PKG_RELEASE="" PKG_FILE="" PKG_SHA256="" PKG_PATH=""
    while IFS='=' read -r key value; do
        case "$key" in
            release) PKG_RELEASE="$value" ;;
            file) PKG_FILE="$value" ;;
            sha256) PKG_SHA256="$value" ;;
            path) PKG_PATH="$value" ;;
        esac
    done <<<"$answer"
    case "$PKG_FILE" in "" | */* | .*) die "the PCE answered an unusable package name" ;; esac
    [ "${#PKG_SHA256}" = 64 ] || die "the PCE answered no sha256 for $PKG_FILE"
    case "$PKG_PATH" in /lab/ven-software/*) ;; *) die "the PCE answered an unusable package path" ;; esac
}

download_package() {
    echo "Retrieving Illumio Packages: VEN $PKG_RELEASE ($PKG_FILE)"
    PKG_LOCAL="$WORK_DIR/$PKG_FILE"
    pce_curl --output "$PKG_LOCAL" "https://$MANAGEMENT_SERVER$PKG_PATH" || die "download of $PKG_FILE failed"
    echo "Validating sha256"
    local actual
    actual="$(sha256sum "$PKG_LOCAL" | cut -d' ' -f1)"
    [ "$actual" = "$PKG_SHA256" ] || die "sha256 of $PKG_FILE is $actual, expected $PKG_SHA256"
}

# shellcheck disable=SC2120 # pair.sh calls it without extra variables, prepare.sh with one
install_package() {
    # Extra VAR=value words (such as VEN_INSTALL_ACTION=prepare) come from the caller.
    local environment=("VEN_MANAGEMENT_SERVER=$MANAGEMENT_SERVER" "PCELAB_CA_FILE=$CA_BUNDLE" "$@")
    if [ -n "$PROXY_SERVER" ]; then
        environment+=("VEN_PROXY_SERVER=$PROXY_SERVER")
    fi
    echo "Installing Illumio Packages"
    case "$PKG_TYPE" in
        deb) env "${environment[@]}" dpkg -i "$PKG_LOCAL" || die "dpkg -i $PKG_FILE failed" ;;
        rpm) env "${environment[@]}" rpm -Uvh --replacepkgs "$PKG_LOCAL" || die "rpm -Uvh $PKG_FILE failed" ;;
    esac
    [ -x "$CTL" ] || die "the package did not install $CTL"
}

main() {
    parse_arguments "$@"
    check_privileges
    prepare_work_dir
    write_ca_bundle
    write_code_header
    detect_platform
    select_package
    download_package
    finish
}

write_activation_config() {
    local config="$DATA_DIR/etc/agent_activation.cfg"
    rm -f "$config"
    (umask 027 && printf 'activation_code: %s\nmasterconfig_server: %s\n' \
        "$ACTIVATION_CODE" "$MANAGEMENT_SERVER" >"$config")
    # The VEN's unprivileged user reads it; nobody else may.
    if [ -z "$ROOT" ] && getent group ilo-ven >/dev/null 2>&1; then
        chgrp ilo-ven "$config"
    fi
    echo "Wrote $config"
}
