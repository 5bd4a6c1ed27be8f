#!/bin/sh
# debian-root.sh SUITE DIR PACKAGE...: unpacks PACKAGEs of Debian SUITE and everything they
# depend on into DIR, a root to chroot into (e.g. trixie's python3.13 on a bookworm host).
#
# The system's apt state is never touched: the sources, package lists, caches and logs are all
# in DIR.apt/ (apt-get with Dir::* options, the suite's key from debian-archive-keyring), and the
# packages are unpacked with `dpkg -x`, not installed (no maintainer scripts). Needs root only to
# chroot into the result. Done once: DIR/.complete holds the package list it was made with.
set -eu
if [ $# -lt 3 ]; then
    echo "usage: $0 SUITE DIR PACKAGE..." >&2
    exit 2
fi
suite=$1
root=$2
shift 2
# apt reads relative Dir:: paths below /etc/apt: make the root absolute.
case $root in
    /*) ;;
    *) root=$(pwd)/$root ;;
esac
wanted="$suite $*"
if [ -f "$root/.complete" ] && [ "$(cat "$root/.complete")" = "$wanted" ]; then
    exit 0
fi
keyring=/usr/share/keyrings/debian-archive-$suite-stable.gpg
[ -f "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
apt_dir=$root.apt
rm -rf "$root" "$apt_dir"
mkdir -p "$apt_dir/sources" "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/log"
: > "$apt_dir/state/status"
: > "$apt_dir/sources.list"
cat > "$apt_dir/sources/$suite.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: $keyring
EOF
apt_options="-o Dir::Etc::SourceList=$apt_dir/sources.list -o Dir::Etc::SourceParts=$apt_dir/sources
 -o Dir::State=$apt_dir/state -o Dir::State::status=$apt_dir/state/status
 -o Dir::Cache=$apt_dir/cache -o Dir::Log=$apt_dir/log -o Debug::NoLocking=true
 -o Acquire::Languages=none -o APT::Install-Recommends=false"
# shellcheck disable=SC2086
apt-get -qq $apt_options update
# shellcheck disable=SC2086
apt-get -qq -y $apt_options install --download-only "$@" >/dev/null
mkdir -p "$root"
for deb in "$apt_dir"/cache/archives/*.deb; do
    dpkg -x "$deb" "$root"
done
# Merged /usr, as base-files would make it.
for link in bin lib lib64 sbin; do
    if [ -d "$root/usr/$link" ] && [ ! -e "$root/$link" ]; then
        ln -s "usr/$link" "$root/$link"
    fi
done
mkdir -p "$root/proc" "$root/tmp" "$root/dev"
chmod 1777 "$root/tmp"
rm -rf "$apt_dir/cache/archives"
echo "$wanted" > "$root/.complete"
