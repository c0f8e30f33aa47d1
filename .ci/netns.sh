#!/bin/sh
# Three hosts in network namespaces, for the multi-host tests (and for developers to try
# things by hand):
#
#   .ci/netns.sh up PREFIX [NET]    # PREFIX-a, PREFIX-b, PREFIX-c at NET.1, NET.2, NET.3 (/24)
#   .ci/netns.sh down PREFIX        # removes them (and their links)
#   .ci/netns.sh check              # exits 0 if this machine lets us make them
#
# Each host namespace has loopback and one veth link, whose other end is on a bridge in a
# fourth namespace, PREFIX-sw (the switch). Nothing is added to this host's own namespace, so
# traffic between the three never leaves them. NET defaults to 10.203.0 (a private range).
# Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2.
set -eu

usage() {
    echo "usage: $0 up PREFIX [NET] | down PREFIX | check" >&2
    exit 2
}

down() {
    for h in a b c sw; do
        ip netns del "$1-$h" 2>/dev/null || true
    done
}

up() {
    p=$1
    net=$2
    ip netns add "$p-sw"
    ip -n "$p-sw" link set lo up
    ip -n "$p-sw" link add br0 type bridge
    ip -n "$p-sw" link set br0 up
    i=1
    for h in a b c; do
        ip netns add "$p-$h"
        ip -n "$p-$h" link set lo up
        ip -n "$p-$h" link add eth0 type veth peer name "v$h" netns "$p-sw"
        ip -n "$p-$h" addr add "$net.$i/24" dev eth0
        ip -n "$p-$h" link set eth0 up
        ip -n "$p-sw" link set "v$h" master br0
        ip -n "$p-sw" link set "v$h" up
        i=$((i + 1))
    done
    # Each link up before anyone connects (bounded); the bridge, without STP, forwards at once.
    for h in a b c; do
        tries=0
        until [ "$(ip netns exec "$p-$h" cat /sys/class/net/eth0/operstate)" = up ]; do
            tries=$((tries + 1))
            if [ "$tries" -ge 50 ]; then
                echo "netns: the link of $p-$h did not come up" >&2
                return 1
            fi
            sleep 0.1
        done
    done
}

# `up` runs outside any `if` or `||`: there `set -e` would be off and a failing step would go
# unnoticed. A failure ends the script, and the trap removes what was made.
case "${1:-}" in
up)
    [ $# -ge 2 ] || usage
    trap 'down "$2"' EXIT
    up "$2" "${3:-10.203.0}"
    trap - EXIT
    ;;
down)
    [ $# -ge 2 ] || usage
    down "$2"
    ;;
check)
    p="places-check-$$"
    # A script of its own, so that its `set -e` holds.
    if sh "$0" up "$p" 10.203.255 >/dev/null 2>&1; then
        down "$p"
    else
        exit 1
    fi
    ;;
*) usage ;;
esac
