#!/bin/sh
# Make the Linux archive and .deb from a PyInstaller bundle in dist/tvlab/.
#   packaging/build_deb.sh VERSION    (run from the repository root; `make bundle` calls it)
set -eu
VERSION="$1"
ARCH=linux-x86_64
DIST=dist
[ -x "$DIST/tvlab/tvlab" ] || { echo "no bundle at $DIST/tvlab: run make bundle" >&2; exit 1; }

# The archive: tvlab-VERSION-linux-x86_64/ with the bundle, the icon and the desktop entry.
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
NAME="tvlab-$VERSION-$ARCH"
mkdir -p "$STAGE/$NAME"
cp -a "$DIST/tvlab/." "$STAGE/$NAME/"
cp resources/icons/tvlab.png resources/icons/tvlab.svg packaging/tvlab.desktop "$STAGE/$NAME/"
tar -C "$STAGE" -czf "$DIST/$NAME.tar.gz.part" "$NAME"
mv "$DIST/$NAME.tar.gz.part" "$DIST/$NAME.tar.gz"
echo "made $DIST/$NAME.tar.gz"

# The .deb: /opt/tvlab, /usr/bin/tvlab, a desktop entry, the icon in hicolor, the
# AppStream metainfo and the copyright file.
ROOTFS="$STAGE/deb"
mkdir -p "$ROOTFS/DEBIAN" "$ROOTFS/opt/tvlab" "$ROOTFS/usr/bin" "$ROOTFS/usr/share/applications" \
         "$ROOTFS/usr/share/icons/hicolor/256x256/apps" "$ROOTFS/usr/share/icons/hicolor/scalable/apps" \
         "$ROOTFS/usr/share/metainfo" "$ROOTFS/usr/share/doc/tvlab"
cp -a "$DIST/tvlab/." "$ROOTFS/opt/tvlab/"
ln -s /opt/tvlab/tvlab "$ROOTFS/usr/bin/tvlab"
cp packaging/tvlab.desktop "$ROOTFS/usr/share/applications/tvlab.desktop"
cp resources/icons/tvlab.png "$ROOTFS/usr/share/icons/hicolor/256x256/apps/tvlab.png"
cp resources/icons/tvlab.svg "$ROOTFS/usr/share/icons/hicolor/scalable/apps/tvlab.svg"
# The copyright file (the lab's MIT licence, the bundled libraries' licences) and the
# AppStream entry software centres read.
install -m 0644 packaging/deb/copyright "$ROOTFS/usr/share/doc/tvlab/copyright"
sed -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$(date -u +%Y-%m-%d)/" packaging/deb/org.tvlab.TransformerVisualLab.metainfo.xml \
  > "$ROOTFS/usr/share/metainfo/org.tvlab.TransformerVisualLab.metainfo.xml"
SIZE_KB=$(du -sk "$ROOTFS" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE_KB@/$SIZE_KB/" packaging/deb/control.in > "$ROOTFS/DEBIAN/control"
# No postinst: the desktop database and the icon cache are refreshed by the dpkg triggers
# of desktop-file-utils and hicolor-icon-theme, which watch the folders written here.
chmod -R u+rwX,go+rX,go-w "$ROOTFS"
DEB="$DIST/tvlab_${VERSION}_amd64.deb"
# -Zgzip: fast, and readable by every dpkg; --root-owner-group: files owned by root.
dpkg-deb --root-owner-group -Zgzip --build "$ROOTFS" "$DEB.part" >/dev/null
mv "$DEB.part" "$DEB"
echo "made $DEB"
