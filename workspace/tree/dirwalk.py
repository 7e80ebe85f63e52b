"""A walk that summarizes each folder as a digest of its files' stats.

For ``ws status`` on a large tree the cost is one lstat per file; what Python
adds on top (building per-file objects, comparing them with a cache) used to
cost more than the syscalls. Here each folder's regular files and symbolic
links become two flat lists (names; size, mtime_ns, inode, mode, all from
lstat: a link's own, never its target's; mode 0o120000 for a link) and one
16-byte BLAKE2 digest, so a link whose target text changes changes it. A
folder whose digest equals the one recorded when it was last proved clean
needs no further look. Only the other folders' lists are kept and returned.

Large trees are walked by this process and a forked helper at once: lstat
does not overlap across Python threads, but it does across processes.
"""

from __future__ import annotations

import os
import stat as statmod
import threading
from array import array

from workspace.tree.ignore import IgnoreRules
from workspace.types import LINK_MODE

Listing = tuple[list[str], list[int]]  # names; flat (size, mtime_ns, ino, mode) per name


try:  # hashlib.blake2b is this very constructor; importing hashlib would load OpenSSL (~10 M instructions)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without its own BLAKE2
    from hashlib import blake2b as _blake2b


def digest(names: list[str], ints: list[int]) -> bytes:
    """The 16-byte digest of one folder's listing."""
    h = _blake2b(digest_size=16)
    h.update("\0".join(names).encode("utf-8", "surrogateescape"))
    try:
        h.update(array("Q", ints).tobytes())
    except OverflowError:  # a negative mtime (a file dated before 1970)
        h.update(repr(ints).encode())
    return h.digest()


def _is_utf8(name: str) -> bool:
    """Whether a name can be stored as text (names that are not UTF-8 are skipped, documented)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _utf8_only(names: list[str], ints: list[int]) -> Listing:
    """Drop names that are not valid UTF-8: the catalog stores paths as text (documented limit)."""
    keep_names: list[str] = []
    keep_ints: list[int] = []
    for i, name in enumerate(names):
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            continue
        keep_names.append(name)
        keep_ints += ints[4 * i : 4 * i + 4]
    return keep_names, keep_ints


def _list_dir(top: str, rel: str, rules: IgnoreRules, subdirs: list, linked: set | None = None) -> Listing | None:
    """One folder's regular files and symlinks as a listing; its subfolders are appended to ``subdirs``.

    A folder holding a file with several hard links is added to ``linked``: a
    write through another name changes the file without an event here.
    """
    check_files = rules.has_patterns
    lstat = os.lstat
    S_ISREG = statmod.S_ISREG
    S_ISLNK = statmod.S_ISLNK
    try:
        it = os.scandir(top)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    names: list[str] = []
    ints: list[int] = []
    prefix = rel + "/" if rel else ""
    with it:
        for entry in it:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not rules.ignored_dir(prefix + name, name) and _is_utf8(name):
                        subdirs.append((top + "/" + name, prefix + name))
                    continue
                st = lstat(top + "/" + name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            mode = st.st_mode
            if S_ISREG(mode):
                if st.st_nlink > 1 and linked is not None:
                    linked.add(rel)
                mode = 0o755 if mode & 0o111 else 0o644
            elif S_ISLNK(mode):  # a link is an entry of its own (its target text), never followed
                mode = LINK_MODE
            else:
                continue
            if name.startswith(".ws-tmp-"):
                continue
            if check_files and rules.ignored_file(prefix + name):
                continue
            names.append(name)
            ints += (st.st_size, st.st_mtime_ns, st.st_ino, mode)
    if not names:
        return None
    try:
        "\0".join(names).encode("utf-8")
    except UnicodeEncodeError:
        names, ints = _utf8_only(names, ints)
    return (names, ints) if names else None


def _record(rel: str, listing: Listing | None, known: dict[str, bytes], digests: dict, detail: dict) -> None:
    if listing is None:
        return
    d = digest(*listing)
    digests[rel] = d
    if known.get(rel) != d:
        detail[rel] = listing


def _walk(stack: list[tuple[str, str]], rules: IgnoreRules, known: dict[str, bytes],
          digests: dict[str, bytes], detail: dict[str, Listing], linked: set | None = None) -> None:
    """Walk folders from ``stack`` ((absolute path, relative path) pairs) and everything below."""
    while stack:
        top, rel = stack.pop()
        _record(rel, _list_dir(top, rel, rules, stack, linked), known, digests, detail)


def listings(top: str, rel: str, rules: IgnoreRules) -> dict[str, Listing]:
    """Every folder with files at or below ``top`` (whose workspace path is ``rel``)."""
    digests: dict[str, bytes] = {}
    detail: dict[str, Listing] = {}
    _walk([(top, rel)], rules, {}, digests, detail)
    return detail


def flatten(detail: dict[str, Listing]) -> dict[str, tuple]:
    """Folder listings as path -> (size, mtime_ns, ino, mode)."""
    out: dict[str, tuple] = {}
    for d, (names, ints) in detail.items():
        prefix = d + "/" if d else ""
        for i, name in enumerate(names):
            out[prefix + name] = tuple(ints[4 * i : 4 * i + 4])
    return out


class DirWalk:
    """Walk a tree, optionally split with a forked helper; ``finish()`` returns the result.

    ``known`` maps folders to the digests they had when proved clean; the
    result's ``detail`` holds the listings of every other folder that has files.
    """

    CHILD_SHARE = 0.6  # of the work (folders, as ``known`` counts them) the helper takes 3/5
    MAX_SPLITS = 4  # folders listed here to cut a dominant one into smaller units

    def __init__(self, root: str, rules: IgnoreRules, known: dict[str, bytes] | None = None,
                 parallel: bool = False):
        self.rules = rules
        self.known = known or {}
        self.digests: dict[str, bytes] = {}
        self.detail: dict[str, Listing] = {}
        self.linked: set[str] = set()  # folders with a file of several hard links
        self.pid = None
        tops = self._root_level(root)
        if not parallel or threading.active_count() > 1 or not hasattr(os, "fork"):
            self.mine, self.theirs = tops, []
            return
        self.theirs, self.mine = self._split(tops)
        if not self.theirs or not self.mine:
            self.mine, self.theirs = self.mine + self.theirs, []
            return
        self.rfd, wfd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            self._child(wfd)
        os.close(wfd)  # or the read in finish() never sees EOF

    def _root_level(self, root: str) -> list[tuple[str, str]]:
        """List the root folder itself; its subfolders become the work to share."""
        tops: list[tuple[str, str]] = []
        _record("", _list_dir(root, "", self.rules, tops, self.linked), self.known, self.digests, self.detail)
        return tops

    def _split(self, units: list[tuple[str, str]]) -> tuple[list, list]:
        """(the helper's folders, ours), about CHILD_SHARE of the work for the helper.

        A folder's weight is how many folders at or below it ``known`` holds (plus one), so a
        tree whose files sit under a few big folders (a site-packages, one ``data/``) is
        shared by size, not by count; a folder holding more than the helper's share is
        listed here and its subfolders shared instead (at most MAX_SPLITS times).
        """
        import bisect

        keys = sorted(self.known)

        def weight(unit: tuple[str, str]) -> int:
            rel = unit[1]
            below = bisect.bisect_left(keys, rel + "0") - bisect.bisect_left(keys, rel + "/")  # "0" follows "/"
            return 1 + below

        weights = {u: weight(u) for u in units}
        for _ in range(self.MAX_SPLITS):
            if not units:
                break
            big = max(units, key=weights.__getitem__)
            if weights[big] <= self.CHILD_SHARE * sum(weights.values()):
                break
            units = [u for u in units if u != big]
            del weights[big]
            below: list[tuple[str, str]] = []
            _record(big[1], _list_dir(big[0], big[1], self.rules, below, self.linked), self.known, self.digests,
                    self.detail)
            for u in below:
                weights[u] = weight(u)
            units += below
        theirs: list[tuple[str, str]] = []
        mine: list[tuple[str, str]] = []
        load_theirs = load_mine = 0
        for u in sorted(units, key=weights.__getitem__, reverse=True):
            if load_theirs * (1 - self.CHILD_SHARE) <= load_mine * self.CHILD_SHARE:
                theirs.append(u)
                load_theirs += weights[u]
            else:
                mine.append(u)
                load_mine += weights[u]
        return theirs, mine

    def _child(self, wfd: int) -> None:
        code = 0
        try:
            import marshal

            os.close(self.rfd)
            digests: dict[str, bytes] = {}
            detail: dict[str, Listing] = {}
            linked: set[str] = set()
            _walk(list(self.theirs), self.rules, self.known, digests, detail, linked)
            with os.fdopen(wfd, "wb") as f:
                f.write(marshal.dumps((digests, detail, linked)))
        except BaseException:
            code = 1
        os._exit(code)

    def finish(self) -> tuple[dict[str, bytes], dict[str, Listing]]:
        """(digest of every folder with files, listings of folders not matching ``known``).

        Call it once for every DirWalk: it reaps the forked helper, also when
        the walk raises (an unreadable folder), so no zombie or pipe is left.
        """
        try:
            _walk(list(self.mine), self.rules, self.known, self.digests, self.detail, self.linked)
            data = self._read_helper()
        except BaseException:
            self._reap(kill=True)  # its result is no longer wanted; do not wait for its walk
            raise
        status = self._reap(kill=False)
        if status == 0 and data:
            import marshal

            digests, detail, linked = marshal.loads(data)
            self.digests.update(digests)
            self.detail.update(detail)
            self.linked.update(linked)
        elif self.theirs:  # no helper, or it failed: do its share here
            _walk(list(self.theirs), self.rules, self.known, self.digests, self.detail, self.linked)
        return self.digests, self.detail

    def _read_helper(self) -> bytes:
        """Everything the helper sent, up to its end of the pipe (b"" without a helper)."""
        if self.pid is None:
            return b""
        parts = []
        while part := os.read(self.rfd, 1 << 20):
            parts.append(part)
        return b"".join(parts)

    def _reap(self, kill: bool) -> int | None:
        """Close the pipe and wait for the helper (killed first when ``kill``); its wait status."""
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        os.close(self.rfd)  # a helper still writing gets EPIPE and exits
        if kill:
            import signal  # not at import (its enums cost ~3 M instructions): only a failed walk kills

            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
        return status


def relist(root: str, rules: IgnoreRules, known: dict[str, bytes], others: list[str],
           dirty: list) -> tuple[dict[str, bytes], dict[str, Listing], set[str]]:
    """What :class:`DirWalk` would return, walking only what a watcher says may have changed.

    ``known``: digests of the folders proved clean at the snapshot; each is
    taken as it was unless it is dirty. ``others``: the snapshot's other
    folders with files, always listed again. ``dirty``: [folder, whole
    sub-tree?] pairs from the watcher; a folder is listed alone, a sub-tree
    walked. Folders that are ignored, below a symbolic link or gone give nothing.
    Returns the digests, the listings not matching ``known``, and the folders
    listed that hold a file with several hard links.
    """
    tops = _outermost(d for d, sub in dirty if sub)
    subtrees = sorted(tops)

    def in_subtree(d: str) -> bool:
        return _in_any(d, tops)

    digests = {d: dg for d, dg in known.items() if not in_subtree(d)}
    detail: dict[str, Listing] = {}
    linked: set[str] = set()
    visible = _Visible(root, rules)
    for d in sorted(set(others) | {d for d, sub in dirty if not sub}):
        if in_subtree(d):
            continue
        digests.pop(d, None)
        if visible(d):
            _record(d, _list_dir(os.path.join(root, d) if d else root, d, rules, [], linked), known, digests,
                    detail)
    for s in subtrees:
        if visible(s):
            _walk([(os.path.join(root, s) if s else root, s)], rules, known, digests, detail, linked)
    return digests, detail, linked


def _outermost(dirs) -> set[str]:
    """The folders of ``dirs`` not below another of them ("" is the whole tree).

    Each folder's ancestors are looked up in a set, shallowest folders first:
    a watcher may report tens of thousands of sub-trees, too many to test pairwise.
    """
    tops: set[str] = set()
    for d in sorted(set(dirs), key=lambda d: (d.count("/") + bool(d), d)):
        if not _in_any(d, tops):
            tops.add(d)
    return tops


def _in_any(d: str, tops: set[str]) -> bool:
    """Whether folder ``d`` is one of ``tops`` or below one of them."""
    if not tops:
        return False
    while True:
        if d in tops:
            return True
        if not d:
            return False
        d = d.rpartition("/")[0]


class _Visible:
    """Whether the full walk would reach a folder: every part a real folder (not a link), none ignored."""

    def __init__(self, root: str, rules: IgnoreRules):
        self.root = root
        self.rules = rules
        self.seen: dict[str, bool] = {"": True}

    def __call__(self, d: str) -> bool:
        if d in self.seen:
            return self.seen[d]
        parent, _, name = d.rpartition("/")
        ok = self(parent) and _is_utf8(name) and not self.rules.ignored_dir(d, name)
        if ok:
            try:
                ok = statmod.S_ISDIR(os.lstat(os.path.join(self.root, d)).st_mode)
            except OSError:
                ok = False
        self.seen[d] = ok
        return ok
