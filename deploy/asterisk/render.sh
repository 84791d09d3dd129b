#!/bin/sh
# Render this folder into a directory ready for /etc/asterisk (and system.conf for /etc/dahdi):
# every {{NAME}} placeholder is replaced by the environment variable NAME. Refuses to write
# anything while a placeholder has no value, so a half-configured PBX never starts.
#
#   AMI_SECRET=... ACD_NETWORK=10.42.0.0/16 IVR_HOST=ivr.callcenter.svc ... ./render.sh /etc/asterisk
set -eu

src=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: render.sh OUTPUT_DIR}

names=$(cat "$src"/*.conf | grep -o '{{[A-Z0-9_]*}}' | tr -d '{}' | sort -u)
missing=""
for name in $names; do
    eval "value=\${$name-}"
    [ -n "$value" ] || missing="$missing $name"
    case $value in
        # ";" starts a comment in Asterisk's config files; a value cannot span lines.
        *';'* | *'
'*) echo "render.sh: $name must not contain ';' or a newline" >&2; exit 1 ;;
    esac
done
if [ -n "$missing" ]; then
    echo "render.sh: no value for:$missing" >&2
    exit 1
fi

script=$(mktemp)
trap 'rm -f "$script"' EXIT
for name in $names; do
    eval "value=\${$name}"
    # Escape what sed treats specially in a replacement: backslash, & and the | delimiter.
    escaped=$(printf '%s' "$value" | sed -e 's/[\\&|]/\\&/g')
    printf 's|{{%s}}|%s|g\n' "$name" "$escaped" >> "$script"
done

mkdir -p "$out"
for file in "$src"/*.conf; do
    sed -f "$script" "$file" > "$out/$(basename "$file")"
done
chmod 0640 "$out/manager.conf" "$out/pjsip.conf" "$out/pjsip_phones.conf"
