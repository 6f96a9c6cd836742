"""What a step may hand over at commit: regular files, directories, and links that stay inside their output.

An output is refused if it is, or contains:

- a symlink that is absolute, or whose target resolves outside that output
  (outputs are committed, freed and checkpointed one by one, so a link may only
  point inside its own output);
- a regular file with more hard links than the output itself holds (linked from
  outside: its bytes are someone else's file);
- a device, a socket or a FIFO.

The check is split so that the handoff touches no per-file metadata:

- at commit, `quick_check`: one lstat of each output. A file output is settled
  by it (its type, its links, its blocks); a directory output only as a
  directory (not a symlink, not a device).
- off the critical path, `scan_output` (vetting.py's thread): the walk of a
  directory output, one lstat per entry (fstatat relative to its open
  directory): symlinks, hard links leading out, devices, sockets, FIFOs, and
  the blocks the output takes (st_blocks × 512, a hard-linked file once), which
  the commit record then keeps as its size in shm. Until its verdict is in, the
  output is not trusted (see vetting.py).

The copiers (checkpoints, results) run scan_output too before they copy, and copy
links as links, so nothing they write reads through a link.

Cost of the walk, measured on the project's machine (2 vCPUs shared with other
work, Python 3.11; 50,000 one-byte files in 500 directories on tmpfs, best /
median of 5):

    scan_output (fstatat per file, relative to its open directory)  144 / 207 ms
    names and types only (d_type, no stat)                           29 /  51 ms
    `du -sB1` / `find -links +1` in C, for comparison                80 /  92 ms (idle machine)

Even the walk by types alone would take most of a 50 ms handoff at 50,000
files, so none of it is on the way from a step's end to its consumers' start.
See docs/contract.md.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

BLOCK_BYTES = 512  # st_blocks counts 512-byte units, whatever the filesystem's block size
SPECIAL_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                 stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}


class OutputRefused(Exception):
    """A step exited 0 but an output of it cannot be committed."""


class UnsafeOutput(OutputRefused):
    """An output reaches outside the step's sandbox (a link out, a device, a socket, a FIFO)."""


@dataclass
class _Linked:
    """A regular file with more than one hard link: how many it has, how many the output holds."""
    path: str
    nlink: int
    seen: int = 0


@dataclass
class _Walk:
    root: Path
    real_root: str = ""  # resolved when a symlink is met (a file output never needs it)
    linked: dict[tuple[int, int], _Linked] = field(default_factory=dict)  # by (st_dev, st_ino)
    allocated: int = 0  # bytes of the blocks the entries take (a hard-linked file once), as du counts

    def count(self, info: os.stat_result) -> None:
        self.allocated += info.st_blocks * BLOCK_BYTES

    def refuse(self, path: str, what: str) -> str:
        relative = os.path.relpath(path, self.root.parent)
        return f"{relative} is {what}"

    def check_link(self, path: str) -> str | None:
        target = os.readlink(path)
        if os.path.isabs(target):
            return self.refuse(path, f"an absolute symlink (to {target})")
        self.real_root = self.real_root or os.path.realpath(self.root)
        resolved = os.path.realpath(path)
        if resolved != self.real_root and not resolved.startswith(self.real_root + os.sep):
            return self.refuse(path, f"a symlink leading outside the output (to {target})")
        return None

    def check_entry(self, path: str, info: os.stat_result) -> str | None:
        kind = stat.S_IFMT(info.st_mode)
        if kind == stat.S_IFLNK:
            return self.check_link(path)
        if kind == stat.S_IFREG:
            if info.st_nlink > 1:
                linked = self.linked.setdefault((info.st_dev, info.st_ino), _Linked(path, info.st_nlink))
                if linked.seen == 0:
                    self.count(info)
                linked.seen += 1
            else:
                self.count(info)
            return None
        if kind == stat.S_IFDIR:
            self.count(info)
            return None
        return self.refuse(path, SPECIAL_KINDS.get(kind, "not a regular file, directory or symlink"))

    def walk(self, path: str, name: str, parent: int | None) -> str | None:
        """Walk the directory `name` (relative to the open directory `parent`; `path` when None), which is
        at `path`. Directories are opened relative to their parent and entries stat'ed relative to them
        (fstatat): no path is resolved again per file. The common case, a file with one link, is inlined."""
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        try:
            self.count(os.fstat(fd))
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):  # d_type: no system call
                        info = entry.stat(follow_symlinks=False)
                        if info.st_nlink == 1:
                            self.allocated += info.st_blocks * BLOCK_BYTES
                            continue
                    elif entry.is_dir(follow_symlinks=False):
                        problem = self.walk(f"{path}/{entry.name}", entry.name, fd)
                        if problem:
                            return problem
                        continue
                    else:
                        info = entry.stat(follow_symlinks=False)
                    problem = self.check_entry(f"{path}/{entry.name}", info)
                    if problem:
                        return problem
        finally:
            os.close(fd)
        return None

    def outside_hard_link(self) -> str | None:
        for linked in self.linked.values():
            if linked.nlink > linked.seen:
                return self.refuse(linked.path, f"a hard link to a file outside the output "
                                                f"({linked.nlink} links, {linked.seen} inside)")
        return None


@dataclass(frozen=True)
class OutputScan:
    problem: str | None  # why the output reaches outside itself; None when it is self-contained
    allocated: int  # bytes of the blocks it takes (st_blocks × 512): what it costs in shm


def scan_output(output: Path) -> OutputScan:
    """One walk of `output` (a file or a directory tree): is it self-contained, and what does it take in shm."""
    walk = _Walk(root=output)
    try:
        info = os.lstat(output)
    except FileNotFoundError:
        return OutputScan(None, 0)
    if stat.S_ISLNK(info.st_mode):
        return OutputScan(_link_itself(walk, output), info.st_blocks * BLOCK_BYTES)
    is_dir = stat.S_ISDIR(info.st_mode)
    problem = walk.walk(str(output), str(output), None) if is_dir else walk.check_entry(str(output), info)
    return OutputScan(problem or walk.outside_hard_link(), walk.allocated)


def _link_itself(walk: _Walk, output: Path) -> str:
    return walk.refuse(str(output), f"a symlink (to {os.readlink(output)}), not a file or directory")


@dataclass(frozen=True)
class QuickCheck:
    problem: str | None  # why the output is refused; None when nothing is seen (yet: a directory is vetted later)
    allocated: int | None  # the blocks it takes when one lstat told everything (a file); None: scan_output's to say


def quick_check(output: str | Path) -> QuickCheck:
    """What the commit checks, one lstat whatever the output holds: a file entirely (its type, its links, its
    blocks); a directory only as such: what is inside it, and its size, are scan_output's, off the critical
    path. FileNotFoundError when there is no output."""
    info = os.lstat(output)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:  # the common case, without a walk's bookkeeping
        return QuickCheck(None, info.st_blocks * BLOCK_BYTES)
    if stat.S_ISDIR(info.st_mode):
        return QuickCheck(None, None)
    walk = _Walk(root=Path(output))
    if stat.S_ISLNK(info.st_mode):
        return QuickCheck(_link_itself(walk, walk.root), None)
    problem = walk.check_entry(str(output), info)
    return QuickCheck(problem or walk.outside_hard_link(), walk.allocated)


def find_escape(output: Path) -> str | None:
    """Why `output` (a file or a directory tree) reaches outside itself, or None when it is self-contained."""
    return scan_output(output).problem


def refusal_message(step: str, data: str, problem: str) -> str:
    """The one line a refused output fails its step with."""
    return (f"step {step}'s output {data!r} is refused: {problem} "
            "(fix: write regular files and directories; a symlink must be relative and stay inside its output)")


def check_output(step: str, data: str, output: Path) -> int:
    """The bytes `output` takes in shm; raise UnsafeOutput, one line naming the step, the output and the
    offending path, if it leaves its sandbox."""
    scan = scan_output(output)
    if scan.problem:
        raise UnsafeOutput(refusal_message(step, data, scan.problem))
    return scan.allocated
