"""Stage 4, write: put a rendered knowledge base into site/ whole, or leave the old one whole.

Three promises, each kept by one mechanism:

1. **All or nothing across files.** Every new file is first written complete (and synced) into a
   staging folder inside site/, so that renames stay on one file system. Then a journal listing
   every rename and removal is written atomically: that is the commit point. Then the renames and
   removals run, the manifest last, and the journal and the staging folder go. A command that
   finds a journal finishes that build first (`recover`): every new file is already complete in the
   staging folder, so rolling forward always works. A staging folder without a journal is removed:
   nothing had been renamed yet, the old knowledge base is whole. `build --check` calls a tree with
   a journal or leftovers different, never up to date.
2. **opdoc removes only what it wrote.** The manifest lists each generated file with the SHA-256 of
   the bytes written. A file is removed only when it is listed, is a plain file inside site/ (no
   symbolic link on the way), and still holds those bytes; changed by hand, it stays and is reported.
   A manifest that is not what opdoc writes (a path outside site/, a wrong type) is an error.
3. **Nothing of the user's is overwritten silently.** A file opdoc would write that exists, is not in
   the manifest and holds other bytes is an error that says what to do.

Files are created with mode 0666 masked by the user's umask, as any program's files are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from opdoc import __version__
from opdoc.stamp import STAMP
from opdoc.problems import SpecError, SpecProblem

MANIFEST = ".opdoc-manifest.json"
JOURNAL = ".opdoc-journal.json"
STAGING_PREFIX = ".opdoc-staging-"
_STAGING = re.compile(re.escape(STAGING_PREFIX) + r"[A-Za-z0-9_]+")
_OLD_TEMP = re.compile(r"\.opdoc-.*\.tmp")  # per-file temporaries of opdoc before 0.2, and the journal's
# A generated file's name: folders and files of letters, digits, `_`, `.` and `-`, never hidden (the
# build stamp apart, which opdoc writes like a page).
_NAME = re.compile(r"[\w-][\w.-]*(?:/[\w-][\w.-]*)*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


# ------------------------------------------------------------------ the manifest


def read_manifest(site: Path) -> dict[str, str | None]:
    """Generated file -> digest of what was written (None from a manifest older than digests)."""
    path = site / MANIFEST
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    fix = f"opdoc writes this file; delete it and run `opdoc build` (files it listed will then count as yours)"

    def problem(line: int, field: str, message: str) -> SpecError:
        return SpecError([SpecProblem(str(path), line, field, f"{message}; {fix}")])

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise problem(getattr(exc, "lineno", 0), "", f"not valid JSON ({exc})") from None
    generated = data.get("generated") if isinstance(data, dict) else None
    if isinstance(generated, list):  # opdoc 0.1 listed names only
        entries = {name: None for name in generated} if all(isinstance(n, str) for n in generated) else None
        if entries is None or len(entries) != len(generated):
            raise problem(_line_of(text, "generated"), "generated", "expected a list of distinct file names")
    elif isinstance(generated, dict):
        entries = generated
    else:
        raise problem(_line_of(text, "generated"), "generated", "expected a mapping of file names to digests")
    for name, value in entries.items():
        message = _name_problem(name)
        if message is None and value is not None and not (isinstance(value, str) and _DIGEST.fullmatch(value)):
            message = "expected a digest written as sha256:<64 hex digits>"
        if message is not None:
            raise problem(_line_of(text, name), f"generated.{name}", message)
    return entries


def _name_problem(name: str) -> str | None:
    """Why `name` cannot be a file opdoc generated inside site/, or None."""
    if name == STAMP:
        return None
    if not _NAME.fullmatch(name) or ".." in name.split("/"):
        return f"{name!r} is not a file name inside site/"
    return None


def _line_of(text: str, key: str) -> int:
    index = text.find(json.dumps(key))
    return text.count("\n", 0, index) + 1 if index >= 0 else 0


def _manifest_bytes(entries: dict[str, str]) -> bytes:
    document = {"generator": f"opdoc {__version__}", "generated": dict(sorted(entries.items()))}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


# ------------------------------------------------------------------ files inside site/


def _plain_file(site: Path, name: str) -> Path | None:
    """site/name if it is a plain file reached through no symbolic link, else None."""
    path = site
    for part in name.split("/"):
        path = path / part
        if path.is_symlink():
            return None
    return path if path.is_file() else None


def _safe_parent(site: Path, name: str) -> bool:
    """True when every folder between site/ and site/name is a real folder (or not there yet), no link."""
    path = site
    for part in name.split("/")[:-1]:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return False
    return True


def _exists(site: Path, name: str) -> bool:
    return os.path.lexists(site / name)


def _create(path: Path, content: bytes) -> None:
    """Write a new file with mode 0666 less the umask, and sync it to disk before it can be renamed."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(handle, view):]
        os.fsync(handle)
    finally:
        os.close(handle)


def _create_all(files: list[tuple[Path, bytes]], threads: int = 8) -> None:
    """_create for every file, `threads` at a time: a sync waits on the disk, not on Python, so eight
    threads halve the time a cold build's 250 files take. The first failure is raised."""
    failures: list[BaseException] = []

    def work(share: list[tuple[Path, bytes]]) -> None:
        try:
            for path, content in share:
                _create(path, content)
        except BaseException as exc:  # noqa: BLE001 - raised again in the calling thread
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(files[i::threads],)) for i in range(min(threads, len(files)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]


def _sync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


# ------------------------------------------------------------------ what would change


def differences(rendered, site: Path) -> list[str]:
    """What `build` would change: files that differ, are missing, stale or left over; changes nothing."""
    if (site / JOURNAL).exists():
        return [f"unfinished {site} (an `opdoc build` was stopped part-way; run `opdoc build` to finish it)"]
    manifest = read_manifest(site)
    changes = [f"leftover  {site / name} (from an interrupted build; `opdoc build` removes it)"
               for name in _leftovers(site)]
    entries = {}
    for name, text in sorted(rendered.files.items()):
        content = text.encode("utf-8")
        entries[name] = digest(content)
        target = _plain_file(site, name)
        if target is None:
            changes.append(f"missing   {site / name}" if not _exists(site, name)
                           else f"differs   {site / name} (not a plain file)")
        elif target.read_bytes() != content:
            mine = "" if name in manifest else " (not written by opdoc: `opdoc build` will refuse to replace it)"
            changes.append(f"differs   {target}{mine}")
    for name in sorted(set(manifest) - set(rendered.files)):
        if _exists(site, name):
            changes.append(f"stale     {site / name} (generated earlier; its spec is gone)")
    current = _plain_file(site, MANIFEST)
    if not changes and (current is None or current.read_bytes() != _manifest_bytes(entries)):
        changes.append(f"differs   {site / MANIFEST} (the list of generated files)")
    return changes


# ------------------------------------------------------------------ writing


def write(rendered, site: Path) -> list[str]:
    """Write every changed file and remove stale ones, as one whole (see the module docstring)."""
    site.mkdir(parents=True, exist_ok=True)
    notes = recover(site)
    manifest = read_manifest(site)
    entries: dict[str, str] = {}
    replace: list[tuple[str, bytes]] = []
    conflicts: list[SpecProblem] = []
    for name, text in sorted(rendered.files.items()):
        if _name_problem(name) is not None or name == MANIFEST:
            raise ValueError(f"the renderer produced a file name opdoc cannot write: {name!r}")
        content = text.encode("utf-8")
        entries[name] = digest(content)
        target = _plain_file(site, name)
        if (target is None and _exists(site, name)) or not _safe_parent(site, name):
            conflicts.append(SpecProblem(str(site / name), 0, "", "is not a plain file (a folder or a link is "
                                         "in the way) where opdoc writes a page; move it, then run `opdoc build`"))
        elif target is not None and target.read_bytes() != content:
            if name not in manifest:
                conflicts.append(SpecProblem(str(target), 0, "", f"exists and opdoc did not write it (it is not in "
                                             f"{MANIFEST}); move it out of {site} or delete it, then run `opdoc build`"))
            replace.append((name, content))
        elif target is None:
            replace.append((name, content))
    if conflicts:
        raise SpecError(conflicts)
    remove: list[tuple[str, str]] = []
    for name in sorted(set(manifest) - set(rendered.files)):
        target = _plain_file(site, name)
        if target is None:
            if _exists(site, name):
                notes.append(f"kept {site / name} (listed as generated, but not a plain file)")
            continue
        recorded = manifest[name]
        if recorded is not None and digest(target.read_bytes()) == recorded:
            remove.append((name, recorded))
        else:
            why = "changed since opdoc wrote it" if recorded else "listed by an older opdoc without a digest"
            notes.append(f"kept {target} ({why}; its spec is gone: delete it if you do not need it)")
    manifest_bytes = _manifest_bytes(entries)
    current = _plain_file(site, MANIFEST)
    if replace or remove or current is None or current.read_bytes() != manifest_bytes:
        replace.append((MANIFEST, manifest_bytes))
        _commit(site, replace, remove)
    written = [str(site / name) for name, _ in replace if name != MANIFEST]
    return written + [f"removed {site / name}" for name, _ in remove] + notes


def _commit(site: Path, replace: list[tuple[str, bytes]], remove: list[tuple[str, str]]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=site))
    plan = {"staging": staging.name, "replace": [], "remove": [list(item) for item in remove]}
    for index, (name, content) in enumerate(replace):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        plan["replace"].append([f"{index:05d}", name, digest(content)])
    _create_all([(staging / staged, content) for (staged, _, _), (_, content) in zip(plan["replace"], replace)])
    _sync_folder(staging)
    temporary = site / f".opdoc-journal-{staging.name[len(STAGING_PREFIX):]}.tmp"
    _create(temporary, (json.dumps(plan, indent=1) + "\n").encode("utf-8"))
    os.replace(temporary, site / JOURNAL)  # the commit point: from here on the build is finished forward
    _sync_folder(site)
    _apply(site, plan)


def _apply(site: Path, plan: dict) -> None:
    """Carry out a journal's plan; safe to run again on a plan that was partly carried out."""
    staging = site / plan["staging"]
    folders = {site}

    def move(staged: str, name: str) -> None:
        if os.path.lexists(staging / staged) and _safe_parent(site, name):
            os.replace(staging / staged, site / name)
            folders.add((site / name).parent)

    for staged, name, _ in plan["replace"]:
        if name != MANIFEST:
            move(staged, name)
    for name, recorded in plan["remove"]:
        target = _plain_file(site, name)
        if target is not None and digest(target.read_bytes()) == recorded:
            os.unlink(target)
    for staged, name, _ in plan["replace"]:
        if name == MANIFEST:  # last: it tells the next build what this one wrote
            move(staged, name)
    for folder in sorted(folders):
        _sync_folder(folder)
    os.unlink(site / JOURNAL)
    shutil.rmtree(staging, ignore_errors=True)


def recover(site: Path) -> list[str]:
    """Finish a build that was stopped after its commit point; clear what one stopped before left.

    Every opdoc command that reads site/ may call this first; `opdoc build` does.
    """
    notes = []
    journal = site / JOURNAL
    if journal.is_file() and not journal.is_symlink():
        plan = _read_journal(journal)
        # Removals listed in a journal are re-checked against their digest; replacements stay inside site/.
        _apply(site, plan)
        notes.append(f"finished an interrupted build in {site}")
    for name in _leftovers(site):
        path = site / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return notes


def _read_journal(path: Path) -> dict:
    fix = "opdoc writes this file; delete it, then run `opdoc build` to rewrite site/"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        valid = (isinstance(plan, dict) and set(plan) == {"staging", "replace", "remove"}
                 and isinstance(plan["staging"], str) and _STAGING.fullmatch(plan["staging"])
                 and isinstance(plan["replace"], list) and isinstance(plan["remove"], list)
                 and all(isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item)
                         and re.fullmatch(r"\d{5}", item[0]) and (item[1] == MANIFEST or _name_problem(item[1]) is None)
                         for item in plan["replace"])
                 and all(isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
                         and _name_problem(item[0]) is None and _DIGEST.fullmatch(item[1])
                         for item in plan["remove"]))
    except ValueError:
        valid = False
    if not valid:
        raise SpecError([SpecProblem(str(path), 0, "", f"not a journal opdoc wrote; {fix}")])
    return plan


def _leftovers(site: Path) -> list[str]:
    """Names (relative to site/) of what interrupted builds left: staging folders and temporary files."""
    found = []
    for folder, subfolders, files in os.walk(site):
        relative = os.path.relpath(folder, site)
        prefix = "" if relative == "." else relative + "/"
        for name in sorted(subfolders):
            if _STAGING.fullmatch(name) and folder == str(site):
                found.append(prefix + name)
        subfolders[:] = sorted(n for n in subfolders if not n.startswith("."))  # not into hidden folders
        found.extend(prefix + name for name in sorted(files) if _OLD_TEMP.fullmatch(name))
    return found
