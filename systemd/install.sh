#!/bin/sh
# Install (or --uninstall) the edgesplit device daemon on Raspberry Pi OS or a Jetson (JetPack 4/5/6).
#
#   sudo systemd/install.sh [--board auto|rpi|jetson|x86] [--peer] [--wheel FILE | --source DIR]
#                           [--python PY] [--skip-pip] [--root DIR]
#   sudo systemd/install.sh --uninstall [--purge] [--root DIR]
#
# What it does, each step only when not done yet (running it twice changes nothing):
#   - a system user and group 'edgesplit', in the board's hardware groups (video, i2c, gpio, jtop) that exist;
#   - a virtual environment /opt/edgesplit/venv with edgesplit and the board's extras
#     (JetPack 4 needs python3.8: apt install python3.8 python3.8-venv);
#   - /etc/edgesplit/edgesplit.toml (never overwritten), /etc/edgesplit/keys;
#   - the units in /etc/systemd/system (+ the board's device drop-in), enabled.
# --root DIR installs into a scratch root (for CI and image builds). --skip-pip creates the venv
# without installing packages. --uninstall removes what the install added; the trace database and
# a config you edited stay unless --purge.
set -eu

ROOT=/
BOARD=auto
PYTHON=
WHEEL=
SOURCE=
SKIP_PIP=0
UNINSTALL=0
PURGE=0
PEER=0
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$2; shift 2 ;;
        --board) BOARD=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --wheel) WHEEL=$2; shift 2 ;;
        --source) SOURCE=$2; shift 2 ;;
        --skip-pip) SKIP_PIP=1; shift ;;
        --peer) PEER=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "run as root (sudo): it creates a system user and installs units"
[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
ROOT=$(cd "$ROOT" && pwd)
R=${ROOT%/}
OPT=$R/opt/edgesplit
ETC=$R/etc/edgesplit
UNITS=$R/etc/systemd/system
STATE_FILE=$OPT/.installed-by-edgesplit
prefix_args() { if [ "$ROOT" != / ]; then echo "--prefix $ROOT"; fi; }

# ------------------------------------------------------------------ board and Python

detect_board() {
    model=$(tr -d '\0' < "$R/proc/device-tree/model" 2>/dev/null || true)
    case "$model" in
        *Raspberry\ Pi*) echo rpi ;;
        *NVIDIA\ Jetson*|*Jetson*) echo jetson ;;
        *) if [ -f "$R/etc/nv_tegra_release" ]; then echo jetson; else echo x86; fi ;;
    esac
}

jetpack_major() {
    release=$(head -n1 "$R/etc/nv_tegra_release" 2>/dev/null || true)
    case "$release" in
        *R32*) echo 4 ;;
        *R35*) echo 5 ;;
        *R36*) echo 6 ;;
        *) echo 0 ;;
    esac
}

[ "$BOARD" = auto ] && BOARD=$(detect_board)
case "$BOARD" in
    rpi) GROUPS_WANTED="video i2c gpio"; EXTRAS=""; DROPIN=rpi.conf ;;
    jetson) GROUPS_WANTED="video i2c gpio jtop"; EXTRAS="jetson-stats"; DROPIN=jetson.conf ;;
    x86) GROUPS_WANTED="video render"; EXTRAS=""; DROPIN= ;;
    *) die "--board $BOARD: choose auto, rpi, jetson or x86" ;;
esac
if [ -z "$PYTHON" ]; then
    PYTHON=python3
    if [ "$BOARD" = jetson ] && [ "$(jetpack_major)" = 4 ]; then
        # JetPack 4 ships Python 3.6; onnxruntime 1.19, numpy 1.24 and pyzmq 27 need 3.8.
        PYTHON=python3.8
    fi
fi

group_exists() { grep -q "^$1:" "$R/etc/group" 2>/dev/null; }
user_exists() { grep -q "^$1:" "$R/etc/passwd" 2>/dev/null; }
group_id() { awk -F: -v g="$1" '$1 == g { print $3 }' "$R/etc/group"; }
record() { grep -qx "$1" "$STATE_FILE" 2>/dev/null || echo "$1" >> "$STATE_FILE"; }
recorded() { grep -qx "$1" "$STATE_FILE" 2>/dev/null; }

# ------------------------------------------------------------------ uninstall

uninstall() {
    if [ -x "$(command -v systemctl || true)" ]; then
        for unit in edgesplit.service edgesplit-peer.service; do
            if [ -f "$UNITS/$unit" ]; then
                if [ "$ROOT" = / ]; then systemctl disable --now "$unit" >/dev/null 2>&1 || true
                else systemctl --root="$ROOT" disable "$unit" >/dev/null 2>&1 || true; fi
            fi
        done
    fi
    rm -f "$UNITS/edgesplit.service" "$UNITS/edgesplit-peer.service"
    rm -rf "$UNITS/edgesplit.service.d"
    for file in edgesplit.toml peer.env; do
        if [ -f "$ETC/$file" ] && { [ $PURGE = 1 ] || cmp -s "$ETC/$file" "$HERE/$file"; }; then
            rm -f "$ETC/$file"
        elif [ -f "$ETC/$file" ]; then
            say "kept $ETC/$file (edited since install; --purge removes it)"
        fi
    done
    if [ -d "$ETC/keys" ] && { [ $PURGE = 1 ] || [ -z "$(ls -A "$ETC/keys")" ]; }; then rm -rf "$ETC/keys"; fi
    rmdir "$ETC" 2>/dev/null || true
    if [ $PURGE = 1 ]; then rm -rf "$R/var/lib/edgesplit"; fi
    if recorded user && user_exists edgesplit; then userdel $(prefix_args) edgesplit; fi
    if recorded group && group_exists edgesplit; then groupdel $(prefix_args) edgesplit; fi
    created_dirs=$(sed -n 's/^dir //p' "$STATE_FILE" 2>/dev/null | sort -r)
    rm -rf "$OPT"
    for dir in $created_dirs; do rmdir "$R$dir" 2>/dev/null || true; done
    if [ "$ROOT" = / ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
    say "uninstalled from $ROOT"
}

if [ $UNINSTALL = 1 ]; then
    uninstall
    exit 0
fi

# ------------------------------------------------------------------ install

say "board $BOARD${DROPIN:+ (drop-in $DROPIN)}, python $PYTHON, root $ROOT"
if [ ! -x "$OPT/venv/bin/python" ] && ! command -v "$PYTHON" >/dev/null 2>&1; then
    die "$PYTHON not found (JetPack 4: apt install python3.8 python3.8-venv)"
fi
# Folders this install creates are recorded, so --uninstall removes them again (when empty).
NEW_DIRS=""
for dir in "$R/opt" "$R/etc/systemd" "$UNITS"; do
    [ -d "$dir" ] || NEW_DIRS="$NEW_DIRS ${dir#"$R"}"
done
mkdir -p "$OPT"
[ -f "$STATE_FILE" ] || : > "$STATE_FILE"
for dir in $NEW_DIRS; do record "dir $dir"; done

if ! group_exists edgesplit; then
    groupadd $(prefix_args) --system edgesplit
    record group
fi
if ! user_exists edgesplit; then
    extra=""
    for g in $GROUPS_WANTED; do
        if group_exists "$g"; then extra="${extra:+$extra,}$g"; fi
    done
    useradd $(prefix_args) --system --gid edgesplit ${extra:+--groups "$extra"} --home-dir /var/lib/edgesplit \
        --no-create-home --shell /usr/sbin/nologin --comment "edgesplit daemon" edgesplit
    record user
    say "created user edgesplit${extra:+ in groups $extra}"
fi
GID=$(group_id edgesplit)

VENV=$OPT/venv
if [ ! -x "$VENV/bin/python" ]; then
    if [ $SKIP_PIP = 1 ]; then "$PYTHON" -m venv --without-pip "$VENV"; else "$PYTHON" -m venv "$VENV"; fi
fi
if [ $SKIP_PIP = 0 ]; then
    package=edgesplit
    if [ -n "$WHEEL" ]; then package=$WHEEL; elif [ -n "$SOURCE" ]; then package=$SOURCE; fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet "$package" $EXTRAS
fi

mkdir -p "$ETC/keys"
chmod 0750 "$ETC" "$ETC/keys"
chown "0:$GID" "$ETC" "$ETC/keys"
if [ ! -f "$ETC/edgesplit.toml" ]; then
    install -m 0640 -o 0 -g "$GID" "$HERE/edgesplit.toml" "$ETC/edgesplit.toml"
fi
if [ $PEER = 1 ] && [ ! -f "$ETC/peer.env" ]; then
    install -m 0640 -o 0 -g "$GID" "$HERE/peer.env" "$ETC/peer.env"
fi

mkdir -p "$UNITS"
install -m 0644 "$HERE/edgesplit.service" "$UNITS/edgesplit.service"
if [ -n "$DROPIN" ]; then
    mkdir -p "$UNITS/edgesplit.service.d"
    install -m 0644 "$HERE/dropins/$DROPIN" "$UNITS/edgesplit.service.d/board.conf"
fi
ENABLE=edgesplit.service
if [ $PEER = 1 ]; then
    install -m 0644 "$HERE/edgesplit-peer.service" "$UNITS/edgesplit-peer.service"
    ENABLE="$ENABLE edgesplit-peer.service"
fi
if [ -x "$(command -v systemctl || true)" ]; then
    if [ "$ROOT" = / ]; then
        [ -d /run/systemd/system ] && systemctl daemon-reload
        # shellcheck disable=SC2086
        systemctl enable $ENABLE >/dev/null 2>&1
    else
        # shellcheck disable=SC2086
        systemctl --root="$ROOT" enable $ENABLE >/dev/null 2>&1
    fi
else
    say "systemctl not found: enable $ENABLE yourself"
fi
say "installed; edit $ETC/edgesplit.toml, check it with 'edgesplit serve --check-config', then: systemctl start edgesplit"
