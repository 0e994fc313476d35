#!/bin/bash
# Build a bootable x86_64 GPT disk image of the appliance from Debian packages, without root mounts,
# loop devices or device-mapper (see docs/installer-guide.md; the method is the one that works on the
# build machines: mmdebstrap into a folder, mke2fs -d, mkfs.vfat -C + mtools, sfdisk + dd).
#
#   image/build.sh [OUT_DIR]          (default build/image; run as root, as `make image` does)
#
# Produces OUT_DIR/appliance-x86_64.img (raw GPT disk: EFI system partition with systemd-boot, then an
# ext4 root that grows to the disk on first boot), .img.zst and .img.bmap when zstd and bmaptool exist.
# Environment: SUITE (bookworm), MIRROR (deb.debian.org), ROOT_SIZE_MB (auto), COMPRESS (1).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
OUT=${1:-$SRC/build/image}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
COMPRESS=${COMPRESS:-1}
ESP_MB=256
IMAGE=$OUT/appliance-x86_64.img
PYTHON=${PYTHON:-$SRC/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3

T0=$(date +%s)
stage() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }

if [ "$(id -u)" != 0 ]; then
  echo "image/build.sh must run as root (mmdebstrap's root mode, chroot, file ownership)" >&2
  exit 1
fi

# --- tools -------------------------------------------------------------------------------------
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v mkfs.vfat >/dev/null || need+=(dosfstools)
command -v mcopy >/dev/null || need+=(mtools)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
[ -f /usr/lib/systemd/boot/efi/systemd-bootx64.efi ] || need+=(systemd-boot-efi)
if [ "$COMPRESS" = 1 ]; then
  command -v zstd >/dev/null || need+=(zstd)
  command -v bmaptool >/dev/null || need+=(bmap-tools)
fi
if [ ${#need[@]} -gt 0 ]; then
  stage "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

WORK=$OUT/work
rm -rf "$WORK"
mkdir -p "$WORK/wheels" "$OUT"
ROOT=$WORK/rootfs

# --- the appliance as wheels -----------------------------------------------------------------------
# pip inside the new root cannot verify the registry's certificate, so every wheel is fetched here for
# the target (CPython 3.11, manylinux x86_64) and installed there with --no-index.
stage "building the wheel from $SRC"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheels" "$SRC"
WHEEL=$(ls "$WORK"/wheels/hotel_pms_appliance-*.whl)
stage "downloading dependency wheels for cp311 x86_64"
"$PYTHON" -m pip download --quiet --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --dest "$WORK/wheels" "$WHEEL" 2> >(grep -v "^WARNING: Location" >&2)

# --- root file system ---------------------------------------------------------------------------------
ROOT_PARTUUID=$(cat /proc/sys/kernel/random/uuid)
ROOT_FSUUID=$(cat /proc/sys/kernel/random/uuid)
ESP_PARTUUID=$(cat /proc/sys/kernel/random/uuid)
PACKAGES=linux-image-amd64,initramfs-tools,systemd-sysv,udev,dbus,iproute2,systemd-resolved,systemd-timesyncd
PACKAGES=$PACKAGES,python3,python3-venv,ca-certificates,openssh-server,less,nano,procps,sqlite3,kmod

stage "mmdebstrap $SUITE into $ROOT"
mmdebstrap --variant=minbase --include="$PACKAGES" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='mkdir -p "$1/tmp/wheels"' \
  --customize-hook="cp $WORK/wheels/*.whl \"\$1/tmp/wheels/\"" \
  --customize-hook='env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$1" python3 -m venv /opt/appliance/venv' \
  --customize-hook='env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$1" /opt/appliance/venv/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels hotel-pms-appliance' \
  --customize-hook='rm -rf "$1/tmp/wheels"' \
  "$SUITE" "$ROOT" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 || { tail -40 "$WORK/mmdebstrap.log"; exit 1; }

stage "configuring the root file system"
install -m 0644 "$SRC"/systemd/appliance*.service "$SRC"/systemd/appliance-backup.timer \
  "$SRC"/systemd/appliance-setup.path "$ROOT/etc/systemd/system/"
install -D -m 0644 "$SRC/systemd/appliance.sysusers" "$ROOT/usr/lib/sysusers.d/appliance.conf"
install -D -m 0644 "$SRC/systemd/appliance.tmpfiles" "$ROOT/usr/lib/tmpfiles.d/appliance.conf"
install -D -m 0644 "$SRC/systemd/journald-appliance.conf" "$ROOT/etc/systemd/journald.conf.d/appliance.conf"
install -D -m 0644 "$SRC/systemd/99-appliance-serial.rules" "$ROOT/etc/udev/rules.d/99-appliance-serial.rules"
install -D -m 0644 "$HERE/files/80-dhcp.network" "$ROOT/etc/systemd/network/80-dhcp.network"
install -D -m 0644 "$HERE/files/wait-online.conf" \
  "$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d/appliance.conf"
install -D -m 0644 "$HERE/files/ssh-hostkeys.conf" "$ROOT/etc/systemd/system/ssh.service.d/appliance-hostkeys.conf"
install -D -m 0644 "$HERE/files/50-root.conf" "$ROOT/etc/repart.d/50-root.conf"
install -m 0644 "$HERE/files/issue" "$ROOT/etc/issue"
install -D -m 0644 "$SRC/docs/installer-guide.md" "$ROOT/opt/appliance/docs/installer-guide.md"
install -D -m 0644 "$SRC/appliance/example-config.yaml" "$ROOT/opt/appliance/docs/example-config.yaml"
ln -sf /opt/appliance/venv/bin/appliance "$ROOT/usr/local/bin/appliance"

# The user and the folders now, so the configuration can be given its group below.
systemd-sysusers --root="$ROOT"
# The configuration lives in the state folder, where the web admin's first-boot setup writes it
# (appliance/firstboot.py); /etc/appliance/appliance.yaml links to it. No admin user and no password
# exist: the first boot opens the setup, guarded by a one-time code shown on the console.
APP_UID=$(chroot "$ROOT" getent passwd appliance | cut -d: -f3)
APP_GID=$(chroot "$ROOT" getent group appliance | cut -d: -f3)
install -d -m 0750 -o root -g "$APP_GID" "$ROOT/etc/appliance"
install -d -m 0750 -o "$APP_UID" -g "$APP_GID" "$ROOT/var/lib/appliance" "$ROOT/var/lib/appliance/backups"
install -m 0640 -o "$APP_UID" -g "$APP_GID" "$HERE/files/appliance.yaml" "$ROOT/var/lib/appliance/appliance.yaml"
ln -sfn /var/lib/appliance/appliance.yaml "$ROOT/etc/appliance/appliance.yaml"
chroot "$ROOT" /opt/appliance/venv/bin/appliance check-config /etc/appliance/appliance.yaml >/dev/null

echo appliance >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tappliance\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
# Every box gets its own machine id (and journal, DHCP client id) on its first boot.
echo uninitialized >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_*
printf 'PARTUUID=%s\t/\text4\tdefaults,errors=remount-ro,x-systemd.growfs\t0\t1\n' "$ROOT_PARTUUID" >"$ROOT/etc/fstab"

systemctl --root="$ROOT" enable appliance.service appliance-web.service appliance-banner.service \
  appliance-backup.timer appliance-setup.path systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
# (systemd-repart.service is static, pulled in by sysinit.target; /etc/repart.d makes it act.)
# Installed for a technician who needs it, off by default: `systemctl enable --now ssh`.
systemctl --root="$ROOT" disable ssh.service ssh.socket >/dev/null 2>&1 || true
ln -sf /run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb

# --- boot files ---------------------------------------------------------------------------------------
KERNEL=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)
INITRD=$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)
# console=ttyS0 last: systemd's status lines and the banner go to the last console given.
CMDLINE="root=PARTUUID=$ROOT_PARTUUID rw quiet console=tty0 console=ttyS0,115200"

stage "EFI system partition (${ESP_MB} MiB, systemd-boot)"
ESP=$WORK/esp.img
rm -f "$ESP"
mkfs.vfat -C -F 32 -n ESP "$ESP" $((ESP_MB * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$ESP" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries
mcopy -i "$ESP" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$ESP" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/systemd/systemd-bootx64.efi
mcopy -i "$ESP" "$HERE/files/loader.conf" ::/loader/loader.conf
printf 'title Hotel PBX-to-PMS appliance\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$CMDLINE" \
  >"$WORK/appliance.conf"
mcopy -i "$ESP" "$WORK/appliance.conf" ::/loader/entries/appliance.conf
mcopy -i "$ESP" "$KERNEL" ::/vmlinuz
mcopy -i "$ESP" "$INITRD" ::/initrd.img

stage "root file system image (ext4)"
USED_MB=$(du -sm --apparent-size "$ROOT" | cut -f1)
# Room for the first days of calls before the first boot grows the partition to the whole disk.
ROOT_MB=${ROOT_SIZE_MB:-$(( (USED_MB * 13 / 10 + 512 + 63) / 64 * 64 ))}
rm -f "$WORK/root.img"
mke2fs -q -t ext4 -L rootfs -U "$ROOT_FSUUID" -E root_owner=0:0 -d "$ROOT" "$WORK/root.img" "${ROOT_MB}M"

stage "GPT disk image"
DISK_MB=$((1 + ESP_MB + ROOT_MB + 1))
rm -f "$IMAGE"
truncate -s "${DISK_MB}M" "$IMAGE"
sfdisk --quiet "$IMAGE" <<EOF
label: gpt
first-lba: 2048
start=2048, size=$((ESP_MB * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_PARTUUID, name="ESP"
start=$(( (1 + ESP_MB) * 2048 )), size=$((ROOT_MB * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_PARTUUID, name="root"
EOF
dd if="$ESP" of="$IMAGE" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$WORK/root.img" of="$IMAGE" bs=1M seek=$((1 + ESP_MB)) conv=notrunc,sparse status=none

if [ "$COMPRESS" = 1 ]; then
  stage "compressing (zstd -10) and bmap"
  zstd -q -f -T0 -10 "$IMAGE" -o "$IMAGE.zst"
  bmaptool -q create -o "$IMAGE.bmap" "$IMAGE"
fi
rm -rf "$ROOT" "$WORK/root.img" "$ESP"

stage "done"
SIZE=$(du -m --apparent-size "$IMAGE" | cut -f1)
USED=$(du -m "$IMAGE" | cut -f1)
echo "image       $IMAGE: ${SIZE} MiB (${USED} MiB allocated), root file system ${ROOT_MB} MiB, ${USED_MB} MiB in it"
[ -f "$IMAGE.zst" ] && echo "compressed  $IMAGE.zst: $(du -m "$IMAGE.zst" | cut -f1) MiB"
echo "build time  $(( $(date +%s) - T0 )) s"
