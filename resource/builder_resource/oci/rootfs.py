"""Applying image layers to a root filesystem: safely, and with umoci's results.

Python's ``tarfile`` extraction filters do not fit (they either break real images
or let hardlinks escape, and know nothing of whiteouts), so each tar member is
handled here by hand, following umoci's ``oci/layer/tar_extract.go``:

- Member names are cleaned lexically; absolute names and ``..`` stay inside the
  root (``/../etc/x`` is ``etc/x``), as in umoci and containerd.
- Parent directories are resolved inside the root component by component, the
  way ``securejoin`` does: symlinks are followed, but an absolute target starts
  again at the root and ``..`` stops at it. The final component is never
  followed: whatever is there is replaced (unlinked; a directory is removed with
  its tree), except that a directory over a directory keeps it and updates its
  attributes.
- Symlinks are created verbatim. A hardlink's target is resolved the same way
  (the target's own final component is not followed) and must exist and must
  not be a directory.
- ``.wh.<name>`` removes ``<name>`` from lower layers and ``<dir>/.wh..wh..opq``
  the lower children of ``<dir>``, wherever it appears; neither touches a path
  this layer wrote (nor an ancestor of one). Malformed whiteouts are refused.
- Ownership is applied only when privileged (euid 0 by default), before the mode
  (``lchown`` clears setuid bits). Unprivileged (or where ``mknod`` is denied, as
  for root in a user namespace), a device node becomes an empty mode-0 file, the
  placeholder ``umoci unpack --rootless`` writes, and ownership is left to the
  running user. ``SCHILY.xattr.*`` records are applied best-effort (never
  ``security.selinux``). Directory mtimes are set last.

Where umoci's output depends on when it ran, this does not: a directory keeps the
mtime its entry gives even where a whiteout later empties it of lower children
(umoci leaves the time of unpacking there), and the root gets the epoch unless a
layer has a ``./`` entry (as umoci does, unless it had to create a parent no
entry describes). Only such undescribed directories get the time of unpacking.

Layers are read with :class:`~builder_resource.oci.tar_stream.TarStream`, not
``tarfile`` (three times slower on small files); file data goes from the
decompressor to the file through one reused 1 MiB buffer. A compressed layer is
decompressed on a thread of its own (:class:`~.compression.ReadAhead`, at most
4 MiB ahead): the decompressors release the GIL, so decompressing and writing
files use two cores, as ``tar -xzf`` does with its gzip process.

Every path handed to the kernel is ``<root>/<resolved parent>/<name>``, where each
component of the resolved parent was checked to be a real directory. Only this
code writes into the root while it runs, and every removal of a directory or a
symlink drops the cache of resolved parents, so that check stays true.

Anything refused raises :class:`~builder_resource.errors.ImageError` naming the
layer (counted from 0) and the entry; :func:`apply_layers` then empties the root.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from ..errors import ImageError
from .compression import decompressing_reader, sniff
from .read_ahead import ReadAhead
from .tar_stream import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarFormatError,
    TarMember,
    TarStream,
)

log = logging.getLogger(__name__)

LayerOpener = Callable[[], AbstractContextManager[BinaryIO]]

CHUNK = 1 << 20
HEADER_BUFFER = 64 << 10
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
#: As umoci: never copied from a layer (the host's labels, NFSv4 ACLs).
IGNORED_XATTRS = frozenset({"security.selinux", "system.nfs4_acl"})
MAX_SYMLINKS = 255
TRAILING_DATA = "data after the end of the compressed stream"

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Refused(Exception):
    """An entry this module will not apply; becomes an ImageError with context."""


def apply_layers(
    layers: Iterable[LayerOpener] | Iterable[BinaryIO],
    root: Path | str,
    *,
    privileged: bool | None = None,
) -> None:
    """Apply ``layers`` in order onto ``root``, which must be missing or empty.

    Each layer is either a zero-argument callable returning a context manager of
    the (possibly compressed) blob's stream, opened only when its turn comes, or
    such a stream itself. Every stream is read to its end, so a
    :class:`~builder_resource.oci.digest.VerifyingReader` gets to check it.
    ``privileged`` (default: euid is 0) decides whether ownership and device nodes
    are applied. On any error the root is emptied again (and removed if this call
    created it): nothing half-applied is left behind.
    """
    root = Path(root)
    created = False
    try:
        os.mkdir(root, 0o755)
        created = True
    except FileExistsError:
        st = os.lstat(root)
        if not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"rootfs target {root} exists and is not a directory") from None
        with os.scandir(root) as it:
            if next(it, None) is not None:
                raise ValueError(f"rootfs target {root} is not empty") from None
    applier = LayerApplier(root, privileged=privileged)
    # As umoci: a root no layer describes gets the epoch as mtime, not "now".
    applier.set_directory_times("", 0, 0)
    try:
        for index, layer in enumerate(layers):
            if callable(layer) and not hasattr(layer, "read"):
                with layer() as stream:
                    applier.apply(stream, index)
            else:
                applier.apply(layer, index)  # type: ignore[arg-type]
        applier.finish()
    except BaseException:
        applier.discard(remove_root=created)
        raise


def apply_layer(
    stream: BinaryIO, root: Path | str, *, index: int = 0, privileged: bool | None = None
) -> None:
    """Apply one layer blob onto an existing ``root``: the lower layers are what is
    already there. On error the root is left as it is; the caller discards it.
    Prefer :func:`apply_layers`, which also keeps directories writable for an
    unprivileged caller until the last layer is in."""
    applier = LayerApplier(Path(root), privileged=privileged)
    applier.apply(stream, index)
    applier.finish()


class LayerApplier:
    """Applies layers one after another onto one root, remembering what the next
    layers need: which parents are resolved, and which directory attributes are
    still to be set."""

    def __init__(self, root: Path, *, privileged: bool | None = None) -> None:
        self._root = os.path.abspath(root)
        if not os.path.isdir(self._root):
            raise ValueError(f"rootfs target {root} is not a directory")
        self._privileged = os.geteuid() == 0 if privileged is None else privileged
        #: cleaned member parent path -> resolved real path, both root-relative
        self._resolved: dict[str, str] = {"": ""}
        #: resolved dir path -> (mode still to set or None, atime ns, mtime ns)
        self._dir_attrs: dict[str, tuple[int | None, int, int]] = {}
        #: paths this layer wrote, and their ancestors (resolved, root-relative)
        self._upper: set[str] = set()
        self._warned: set[str] = set()
        self._layer = 0
        self._placeholders = 0
        self._buffer = memoryview(bytearray(CHUNK))
        # Who owns what we create, unless told otherwise: ownership syscalls are
        # skipped where they would change nothing.
        self._euid, self._egid = os.geteuid(), os.getegid()
        #: resolved directories with the setgid bit: what is created in them gets
        #: their group, so ownership must always be set there
        self._setgid: set[str] = set()
        if os.stat(self._root).st_mode & stat.S_ISGID:
            self._setgid.add("")
        #: permission bits a new file gets as asked (umask); 0: always chmod
        self._perm_mask = 0

    # --- layers ---------------------------------------------------------------

    def apply(self, stream: BinaryIO, index: int) -> None:
        """Apply one (possibly compressed) layer blob, then read it to its end."""
        self._layer = index
        self._upper = set()
        self._placeholders = 0
        umask = _umask()
        self._perm_mask = 0 if umask is None else 0o777 & ~umask
        raw = (
            stream
            if isinstance(stream, io.BufferedReader)
            else io.BufferedReader(_RawReader(stream), CHUNK)
        )
        entries = 0
        data: BinaryIO = raw
        try:
            if sniff(raw.peek(4)[:4]) != "none":
                # decompress on a thread of its own: two cores, like tar and gzip
                decompressed = decompressing_reader(raw)

                def trailer() -> None:
                    if raw.read(CHUNK):
                        raise ImageError(f"layer {index}: {TRAILING_DATA}")

                # A buffer smaller than the chunks: headers are read from it, and
                # file data goes straight from a chunk to the copy buffer.
                data = io.BufferedReader(  # type: ignore[assignment]
                    ReadAhead(decompressed.read, trailer, name=f"layer-{index}"), HEADER_BUFFER
                )
            tar = TarStream(data, self._buffer)
            apply_entry = self._apply_entry
            while (member := tar.next()) is not None:
                entries += 1
                try:
                    apply_entry(member, tar)
                except (_Refused, OSError, ValueError, OverflowError) as e:
                    raise self._entry_error(member, e) from e
            # Read both streams to the end: the decompressor checks its trailer and
            # a verifying reader checks the digest only at EOF.
            while data.read(CHUNK):
                pass
        except ImageError:
            raise
        except TarFormatError as e:
            raise ImageError(f"layer {index}: not a valid tar stream: {e}") from e
        except _decompression_errors() as e:
            raise ImageError(f"layer {index}: corrupt layer data: {e}") from e
        finally:
            if data is not raw:
                data.close()
        if self._placeholders:
            log.warning(
                "layer %d: not privileged: %d device node(s) written as empty mode-0 files",
                index,
                self._placeholders,
            )
        log.debug("layer %d: applied %d entries", index, entries)

    def finish(self) -> None:
        """Set the directory attributes left for last: mtimes (entries written into a
        directory change it) and, unprivileged, modes that would have locked us out."""
        for rel, (mode, atime, mtime) in sorted(
            self._dir_attrs.items(), key=lambda kv: kv[0].count("/") + bool(kv[0]), reverse=True
        ):
            full = self._full(rel)
            try:
                if mode is not None:
                    fd = os.open(full, _DIR_FLAGS)
                    try:
                        os.fchmod(fd, mode)
                        os.utime(fd, ns=(atime, mtime))
                    finally:
                        os.close(fd)
                else:
                    os.utime(full, ns=(atime, mtime), follow_symlinks=False)
            except OSError as e:
                raise ImageError(f"setting attributes of directory /{rel}: {e}") from e
        self._dir_attrs.clear()

    def set_directory_times(self, rel: str, atime_ns: int, mtime_ns: int) -> None:
        """Times for a directory (root-relative path) that :meth:`finish` will set,
        unless a layer's entry for it says otherwise."""
        mode = self._dir_attrs.get(rel, (None, 0, 0))[0]
        self._dir_attrs[rel] = (mode, atime_ns, mtime_ns)

    def discard(self, *, remove_root: bool) -> None:
        """Remove everything under the root (and the root, if asked): a failed
        apply leaves nothing behind."""
        try:
            with _scandir(self._root) as it:
                children = list(it)
            for child in children:
                if child.is_dir(follow_symlinks=False):
                    self._rmtree(child.name, child.path)
                else:
                    _unlink(child.path)
            if remove_root:
                os.rmdir(self._root)
        except OSError:
            log.exception("could not clean up %s after a failed layer", self._root)

    # --- entries --------------------------------------------------------------

    def _entry_error(self, m: TarMember, e: Exception) -> ImageError:
        if isinstance(e, _Refused):
            return ImageError(f"layer {self._layer}: refusing entry {m.name!r}: {e}")
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return ImageError(f"layer {self._layer}: entry {m.name!r}: {reason}")

    def _apply_entry(self, m: TarMember, tar: TarStream) -> None:
        parts = _clean(m.name)
        if not parts:
            if m.type != DIRTYPE:
                raise _Refused("it would change the type of the root directory")
            self._dir_metadata(m, "", "", self._root, existed=True)
            return
        name = parts[-1]
        if WHITEOUT_PREFIX in m.name:
            for part in parts[:-1]:
                if part.startswith(WHITEOUT_PREFIX):
                    raise _Refused(f"whiteout name {part!r} used as a directory")
            if name.startswith(WHITEOUT_PREFIX):
                self._whiteout(parts)
                return
        del parts[-1]
        key = "/".join(parts)
        parent = self._resolved.get(key)
        if parent is None:
            parent = self._resolve(parts, create=True)
            assert parent is not None
        rel = f"{parent}/{name}" if parent else name
        full = f"{self._root}/{rel}"
        kind = m.type
        if kind == REGTYPE:
            self._regular(m, tar, parent, rel, full)
        elif kind == DIRTYPE:
            self._directory(m, parent, rel, full)
            self._resolved[f"{key}/{name}" if key else name] = rel
        elif kind == SYMTYPE:
            self._symlink(m, parent, rel, full)
        elif kind == LNKTYPE:
            self._hardlink(m, rel, full)
        elif kind in (CHRTYPE, BLKTYPE, FIFOTYPE):
            self._special(m, parent, rel, full)
        else:
            raise _Refused(f"unsupported tar entry type {kind!r}")
        upper = self._upper
        upper.add(rel)
        while parent and parent not in upper:
            upper.add(parent)
            parent = parent.rpartition("/")[0]

    def _regular(self, m: TarMember, tar: TarStream, parent: str, rel: str, full: str) -> None:
        mode = m.mode & 0o7777
        try:
            fd = os.open(full, _CREATE_FLAGS, mode & 0o777)
        except FileExistsError:
            fd = self._create_file(rel, full, mode & 0o777)
        try:
            if m.size:
                tar.copy_data(fd)
            if self._privileged and (
                m.uid != self._euid or m.gid != self._egid or parent in self._setgid
            ):
                self._chown(fd, m)
            if mode & self._perm_mask != mode:  # what open() could not set
                os.fchmod(fd, mode)
            if m.xattrs:
                self._set_xattrs(fd, m)
            os.utime(fd, ns=(m.atime_ns, m.mtime_ns))
        finally:
            os.close(fd)

    def _directory(self, m: TarMember, parent: str, rel: str, full: str) -> None:
        existed = False
        try:
            os.mkdir(full, 0o700)
        except FileExistsError:
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                existed = True
            else:
                self._clear(rel, full, st)
                os.mkdir(full, 0o700)
        self._dir_metadata(m, parent, rel, full, existed=existed)

    def _symlink(self, m: TarMember, parent: str, rel: str, full: str) -> None:
        try:
            os.symlink(m.linkname, full)
        except FileExistsError:
            self._clear(rel, full, os.lstat(full))
            os.symlink(m.linkname, full)
        if self._privileged and (
            m.uid != self._euid or m.gid != self._egid or parent in self._setgid
        ):
            self._chown(full, m, follow_symlinks=False)
        self._set_xattrs(full, m, follow_symlinks=False)
        os.utime(full, ns=(m.atime_ns, m.mtime_ns), follow_symlinks=False)

    def _hardlink(self, m: TarMember, rel: str, full: str) -> None:
        target_parts = _clean(m.linkname)
        if not target_parts:
            raise _Refused("hardlink to the root directory")
        target_parent = self._resolve(target_parts[:-1], create=False)
        if target_parent is None:
            raise _Refused(f"hardlink target {m.linkname!r} does not exist in the root")
        target_rel = f"{target_parent}/{target_parts[-1]}" if target_parent else target_parts[-1]
        target = f"{self._root}/{target_rel}"
        try:
            target_st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise _Refused(f"hardlink target {m.linkname!r} does not exist in the root") from None
        if stat.S_ISDIR(target_st.st_mode):
            raise _Refused(f"hardlink to a directory ({m.linkname!r})")
        if target_rel == rel:
            raise _Refused("hardlink to itself")
        try:
            os.link(target, full, follow_symlinks=False)
        except FileExistsError:
            self._clear(rel, full, os.lstat(full))
            os.link(target, full, follow_symlinks=False)

    def _special(self, m: TarMember, parent: str, rel: str, full: str) -> None:
        if m.type == FIFOTYPE:
            kind, dev = stat.S_IFIFO, 0
        elif self._privileged:
            kind = stat.S_IFCHR if m.type == CHRTYPE else stat.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
        else:
            self._placeholder(m, rel, full)
            return
        try:
            try:
                os.mknod(full, kind | 0o600, dev)
            except FileExistsError:
                self._clear(rel, full, os.lstat(full))
                os.mknod(full, kind | 0o600, dev)
        except PermissionError:
            # root in a user namespace may not create devices: as unprivileged
            self._warn_once("mknod", "cannot create device nodes (%s): writing placeholders", full)
            self._placeholder(m, rel, full)
            return
        if self._privileged:
            self._chown(full, m, follow_symlinks=False)
        os.chmod(full, m.mode & 0o7777)  # just created: the final component is no symlink
        self._set_xattrs(full, m, follow_symlinks=False)
        os.utime(full, ns=(m.atime_ns, m.mtime_ns), follow_symlinks=False)

    def _placeholder(self, m: TarMember, rel: str, full: str) -> None:
        """An empty mode-0 file where a device node would be (umoci --rootless)."""
        fd = self._create_file(rel, full)
        try:
            os.fchmod(fd, 0)
            os.utime(fd, ns=(m.atime_ns, m.mtime_ns))
        finally:
            os.close(fd)
        self._placeholders += 1

    # --- whiteouts ------------------------------------------------------------

    def _whiteout(self, parts: list[str]) -> None:
        name = parts[-1]
        opaque = name == OPAQUE_WHITEOUT
        if not opaque:
            target = name[len(WHITEOUT_PREFIX) :]
            if target in ("", ".", ".."):
                raise _Refused("whiteout names no entry in its directory")
        parent = self._resolve(parts[:-1], create=False)
        if parent is None:
            return
        rel = parent if opaque else (f"{parent}/{target}" if parent else target)
        full = self._full(rel)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return
        self._purge(rel, full, st, keep_top=opaque)

    def _purge(self, top: str, full: str, st: os.stat_result, *, keep_top: bool) -> None:
        """Remove ``top`` and what is under it, except paths this layer wrote (and
        their ancestors); keep ``top`` itself for an opaque whiteout."""
        upper = self._upper
        stack = [(top, full, st)]
        while stack:
            rel, path, st = stack.pop()
            if rel not in upper and not (keep_top and rel == top):
                self._clear(rel, path, st)
                continue
            if stat.S_ISDIR(st.st_mode):
                with _scandir(path) as it:
                    for e in it:
                        child = f"{rel}/{e.name}" if rel else e.name
                        stack.append((child, e.path, e.stat(follow_symlinks=False)))

    # --- paths ----------------------------------------------------------------

    def _full(self, rel: str) -> str:
        return f"{self._root}/{rel}" if rel else self._root

    def _resolve(self, parts: list[str], *, create: bool) -> str | None:
        """The real path, relative to the root, of the directory ``parts`` names,
        symlinks resolved inside the root like securejoin. Missing directories are
        created (``create``) or make the answer None; a non-directory on the way is
        an error (``create``) or None."""
        key = "/".join(parts)
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        # Usually the parent's parent is known: continue from there.
        start = self._resolved.get("/".join(parts[:-1]))
        plain = start is None  # no symlink nor '..' met: every prefix resolves to itself
        if start is not None:
            resolved = start.split("/") if start else []
            pending = [parts[-1]]
        else:
            resolved = []
            pending = list(reversed(parts))
        existing = len(resolved)  # leading components known to exist as directories
        links = 0
        root = self._root
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                plain = False
                if resolved:
                    resolved.pop()
                    existing = min(existing, len(resolved))
                continue
            if existing < len(resolved):
                resolved.append(part)
                continue
            path = "/".join((root, *resolved, part))
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                resolved.append(part)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                plain = False
                if links > MAX_SYMLINKS:
                    raise _Refused(f"too many levels of symbolic links in {key!r}")
                target = os.readlink(path)
                if target.startswith("/"):
                    resolved = []
                    existing = 0
                pending.extend(reversed(target.split("/")))
                continue
            if not stat.S_ISDIR(st.st_mode):
                if not create:
                    return None
                raise _Refused(f"parent /{'/'.join((*resolved, part))} is not a directory")
            resolved.append(part)
            existing = len(resolved)
        if existing < len(resolved):
            if not create:
                return None
            for depth in range(existing + 1, len(resolved) + 1):
                os.mkdir("/".join((root, *resolved[:depth])), 0o777)
                if "/".join(resolved[: depth - 1]) in self._setgid:  # inherited
                    self._setgid.add("/".join(resolved[:depth]))
        rel = "/".join(resolved)
        self._resolved[key] = rel
        if plain:
            for depth in range(1, len(parts)):
                self._resolved.setdefault("/".join(parts[:depth]), "/".join(resolved[:depth]))
        return rel

    def _create_file(self, rel: str, full: str, mode: int = 0o600) -> int:
        try:
            return os.open(full, _CREATE_FLAGS, mode)
        except FileExistsError:
            self._clear(rel, full, os.lstat(full))
            return os.open(full, _CREATE_FLAGS, mode)

    def _clear(self, rel: str, full: str, st: os.stat_result) -> None:
        """Remove what is at ``full`` without following it."""
        if stat.S_ISDIR(st.st_mode):
            self._rmtree(rel, full)
        else:
            _unlink(full)
            if stat.S_ISLNK(st.st_mode):
                self._forget_resolved()

    def _rmtree(self, rel: str, full: str) -> None:
        self._forget_resolved()
        stack: list[tuple[str, str, bool]] = [(rel, full, False)]
        while stack:
            r, path, emptied = stack.pop()
            if emptied:
                _rmdir(path)
                continue
            self._dir_attrs.pop(r, None)
            self._setgid.discard(r)
            stack.append((r, path, True))
            with _scandir(path) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append((f"{r}/{e.name}", e.path, False))
                    else:
                        _unlink(e.path)

    def _forget_resolved(self) -> None:
        """A directory or symlink went away: resolved parents may be stale."""
        if len(self._resolved) > 1:
            self._resolved = {"": ""}

    # --- metadata -------------------------------------------------------------

    def _dir_metadata(
        self, m: TarMember, parent: str, rel: str, full: str, *, existed: bool
    ) -> None:
        if self._privileged and (
            existed or m.uid != self._euid or m.gid != self._egid or parent in self._setgid
        ):
            self._chown(full, m, follow_symlinks=False)
        mode = m.mode & 0o7777
        deferred: int | None = None
        if self._privileged or mode & 0o700 == 0o700:
            os.chmod(full, mode)
        else:
            # keep it usable for the layers still to come; the real mode comes last
            os.chmod(full, mode | 0o700)
            deferred = mode
        if mode & stat.S_ISGID:
            self._setgid.add(rel)
        else:
            self._setgid.discard(rel)
        if existed:
            self._clear_xattrs(full, m)
        self._set_xattrs(full, m, follow_symlinks=False)
        self._dir_attrs[rel] = (deferred, m.atime_ns, m.mtime_ns)

    def _chown(self, target: int | str, m: TarMember, follow_symlinks: bool = True) -> None:
        try:
            os.chown(target, m.uid, m.gid, follow_symlinks=follow_symlinks)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            # root in a user namespace without that id mapped
            self._warn_once(
                "chown",
                "cannot set owner %d:%d on %s (%s): ownership skipped",
                m.uid,
                m.gid,
                m.name,
                e.strerror,
            )

    def _set_xattrs(self, target: int | str, m: TarMember, follow_symlinks: bool = True) -> None:
        for name, value in m.xattrs:
            if name in IGNORED_XATTRS:
                log.debug("%s: not setting xattr %s", m.name, name)
                continue
            try:
                os.setxattr(target, name, value, follow_symlinks=follow_symlinks)
            except OSError as e:
                self._warn_once(
                    f"xattr:{e.errno}",
                    "cannot set xattr %s on %s (%s): xattrs are best-effort",
                    name,
                    m.name,
                    e.strerror,
                )

    def _clear_xattrs(self, full: str, m: TarMember) -> None:
        """Dir over dir: the upper layer's xattrs replace the lower one's, as umoci."""
        keep = {name for name, _ in m.xattrs} | IGNORED_XATTRS
        try:
            for name in os.listxattr(full, follow_symlinks=False):
                if name not in keep:
                    os.removexattr(full, name, follow_symlinks=False)
        except OSError as e:
            self._warn_once(
                f"xattr:{e.errno}", "cannot clear xattrs on %s (%s)", m.name, e.strerror
            )

    def _warn_once(self, kind: str, msg: str, *args: object) -> None:
        if kind in self._warned:
            log.debug(msg, *args)
        else:
            self._warned.add(kind)
            log.warning(msg + " (further ones logged at debug level)", *args)


def _decompression_errors() -> tuple[type[BaseException], ...]:
    """What the decompressors raise on corrupt input (gzip raises OSError). Looked
    up when an error is being matched: zstandard is imported only for zstd layers,
    and what was never imported raised nothing."""
    errors: list[type[BaseException]] = [OSError, EOFError, zlib.error]
    isal = sys.modules.get("isal.igzip_lib")
    if isal is not None:
        errors.append(isal.IsalError)
    zstd = sys.modules.get("zstandard")
    if zstd is not None:
        errors.append(zstd.ZstdError)
    return tuple(errors)


def _umask() -> int | None:
    """The process umask, read without changing it (which would race with other
    threads); None where /proc does not say."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _clean(name: str) -> list[str]:
    """A member name's components, cleaned lexically like umoci's CleanPath: an
    absolute name is relative to the root and ``..`` stops at it."""
    if not name.startswith(("/", ".")) and "/." not in name and "//" not in name:
        name = name.rstrip("/")  # no empty, "." or ".." component: split is enough
        return name.split("/") if name else []
    out: list[str] = []
    for part in name.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part and part != ".":
            out.append(part)
    return out


class _RawReader(io.RawIOBase):
    """Lets any object with ``read`` sit under ``io.BufferedReader`` (which the
    decompressors want), e.g. a VerifyingReader."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def _scandir(path: str) -> AbstractContextManager[Iterator[os.DirEntry[str]]]:
    try:
        return os.scandir(path)
    except PermissionError:
        os.chmod(path, 0o700)  # unprivileged: a directory of ours with a strict mode
        return os.scandir(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except PermissionError:
        os.chmod(os.path.dirname(path), 0o700)
        os.unlink(path)


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except PermissionError:
        os.chmod(os.path.dirname(path), 0o700)
        os.rmdir(path)
