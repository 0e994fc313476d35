#!/bin/bash
# Boot the appliance image in QEMU (software emulation, UEFI via OVMF) and check that it comes up:
# the boot banner says both services are active, the web admin answers through a forwarded port,
# and the serial console shows a login prompt. Prints the times; exits non-zero on failure.
#
#   image/boot-test.sh [IMAGE] [TIMEOUT_SECONDS]     (defaults: build/image/appliance-x86_64.img, 480)
#
# The image itself is never written: QEMU runs on a 4 GiB copy-on-write overlay, which also tests that
# the first boot grows the root partition to a disk larger than the image. TCG, not KVM: a stock Debian
# kernel hangs under this machine's /dev/kvm (see shared/reference/appliance-image.md).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
IMAGE=$(realpath "${1:-$HERE/../build/image/appliance-x86_64.img}")
TIMEOUT=${2:-480}
LOG_COPY=$(dirname "$IMAGE")/boot-test-serial.log

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing ${need[*]}: apt-get install them" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

WORK=$(mktemp -d)
QEMU_PID=
cleanup() {
  [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  [ -f "$WORK/serial.log" ] && cp "$WORK/serial.log" "$LOG_COPY"
  rm -rf "$WORK"
}
trap cleanup EXIT

qemu-img create -q -f qcow2 -F raw -b "$IMAGE" "$WORK/disk.qcow2" 4G
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$WORK/vars.fd"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
: >"$WORK/serial.log"

START=$(date +%s.%N)
qemu-system-x86_64 -accel tcg -machine q35 -m 1024 -smp 2 -display none -no-reboot -monitor none \
  -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive if=pflash,format=raw,unit=1,file="$WORK/vars.fd" \
  -drive file="$WORK/disk.qcow2",format=qcow2,if=virtio \
  -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$PORT"-:80 -device virtio-net-pci,netdev=n0 \
  -serial file:"$WORK/serial.log" &
QEMU_PID=$!

elapsed() { python3 -c "import time; print(f'{time.time() - $START:.0f}')"; }
http_status() {
  python3 - "$PORT" <<'EOF'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)  # any HTTP answer (a redirect to the login or setup page) means it is serving
except Exception:
    print("")
EOF
}

t_loader= t_login= t_banner= t_http= banner=
while :; do
  now=$(elapsed)
  [ -z "$t_loader" ] && grep -aq "Boot in" "$WORK/serial.log" && t_loader=$now
  [ -z "$t_login" ] && grep -aq "login:" "$WORK/serial.log" && t_login=$now
  if [ -z "$t_banner" ] && grep -aq "APPLIANCE BOOT:" "$WORK/serial.log"; then
    t_banner=$now
    banner=$(grep -a "APPLIANCE BOOT:" "$WORK/serial.log" | head -1 | tr -d '\r')
  fi
  if [ -z "$t_http" ] && [ -n "$(http_status)" ]; then t_http=$now; fi
  [ -n "$t_login" ] && [ -n "$t_banner" ] && [ -n "$t_http" ] && break
  if ! kill -0 "$QEMU_PID" 2>/dev/null; then echo "QEMU exited early" >&2; break; fi
  if [ "$now" -ge "$TIMEOUT" ]; then echo "timed out after $TIMEOUT s" >&2; break; fi
  sleep 1
done

echo "boot loader menu  ${t_loader:-never} s"
echo "boot banner       ${t_banner:-never} s  ${banner#*APPLIANCE BOOT: }"
echo "web admin (HTTP)  ${t_http:-never} s  (status $(http_status), port $PORT)"
echo "login prompt      ${t_login:-never} s"
echo "serial console    $LOG_COPY"
if [ -n "$t_http" ] && [ -n "$t_login" ] && [[ "$banner" == *"daemon active, web admin active"* ]]; then
  echo "boot test passed"
  exit 0
fi
echo "boot test FAILED; the end of the serial console:" >&2
tail -40 "$WORK/serial.log" >&2
exit 1
