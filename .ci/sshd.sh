#!/usr/bin/env bash
# Starts a throwaway OpenSSH server on 127.0.0.1 (a free port, generated keys) for the ssh
# launcher tests, installing openssh-server first if needed. Prints the environment the tests
# read; `eval "$(.ci/sshd.sh)"` sets it. Usage: .ci/sshd.sh [STATE_DIR]
set -euo pipefail
dir=${1:-/tmp/places-sshd}
mkdir -p "$dir"
chmod 700 "$dir"
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >&2
fi
[ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" >&2
[ -f "$dir/user_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/user_key" >&2
cp "$dir/user_key.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"
if [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
  port=$(sed -n 's/^Port //p' "$dir/sshd_config")
else
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
CONF
  mkdir -p /run/sshd
  /usr/sbin/sshd -f "$dir/sshd_config"
fi
echo "export PLACES_TEST_SSH=$(id -un)@127.0.0.1 PLACES_TEST_SSH_PORT=$port PLACES_TEST_SSH_KEY=$dir/user_key"
