"""The fuzzer's mutator: where the fields the loader reads are in an ELF file, and mutants aimed at them."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from tests.elf.fuzz_elf_format import (
    INTERESTING_TAGS,
    SHF_COMPRESSED,
    STRING_TAGS,
)
from tests.elf.fuzz_layout import Field, Layout, layout
from tests.elf.fuzz_seeds import DLOPEN_JSON, INTERP, LIB, MAIN

# Names a mutated string may become: other files of the root, itself, tokens, escapes, traps.
NAMES = [
    b"libfuzz.so.1",
    b"libseed.so.1",
    b"libc.so.6",
    b"libloop.so.1",
    b"libdir.so.1",
    b"libfifo.so.1",
    MAIN.encode(),
    LIB.encode(),
    INTERP.encode(),
    b"/dev/fifo",
    b"/",
    b"",
    b".",
    b"..",
    b"../../../../../etc/passwd",
    b"$ORIGIN",
    b"$ORIGIN/libfuzz.so.1",
    b"${ORIGIN}/../lib/x86_64-linux-gnu/libfuzz.so.1",
    b"$LIB/libfuzz.so.1",
    b"$PLATFORM",
    b"${LIB",
    b"$",
    b"$$ORIGIN",
    b"/lib64/../../../lib64/ld-linux-x86-64.so.2",
    b":" * 64,
    b"a:" * 200,
    b"$ORIGIN:" * 50,
    b"/usr/lib/x86_64-linux-gnu/libloop.so.1/x",
    b"\xff\xfe\xc3(",
    b"lib\x00fuzz.so.1",
    b"/" * 300,
    b"a/" * 150,
    b"x" * 5000,
]
NOTE_PAYLOADS = [
    b"[" * 100000,
    b'[{"soname":' * 3000,
    b'[{"soname":["\\u0000"]}]',
    b'[{"soname":["\\ud800"]}]',
    b'[{"soname":["/usr/bin/fuzz"],"feature":{"a":1}}]',
    b'[{"soname":["libfuzz.so.1","libloop.so.1"]}]',
    b'[{"soname":"libfuzz.so.1"}]',
    b'{"soname":[]}',
    b"[1,2,3]",
    b'["x"]',
    b"[" + b"1" * 6000 + b"]",
    b'[{"soname":["$ORIGIN/../../../../x"]}]',
    b'[{"soname":["a\\/b"]}]',
    b"\xff\xfe",
    b"null",
    b"",
    DLOPEN_JSON.encode() * 3,
]


def interesting(rng: random.Random, old: int, size: int, file_size: int) -> int:
    bits = 8 * size
    choices = [
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        0x7F,
        0x80,
        0xFF,
        0x100,
        0x7FFF,
        0xFFFF,
        0x10000,
        0x7FFFFFFF,
        0x80000000,
        0xFFFFFFFF,
        1 << 32,
        (1 << 63) - 1,
        1 << 63,
        (1 << 64) - 1,
        file_size,
        file_size - 1,
        file_size + 1,
        file_size // 2,
        old + 1,
        old - 1,
        old * 2,
        old + 0x1000,
        old - 0x1000,
        old ^ (1 << rng.randrange(bits)),
        rng.getrandbits(bits),
        rng.randrange(max(1, file_size)),
    ]
    return rng.choice(choices) & ((1 << bits) - 1)


def _write_int(blob: bytearray, at: int, size: int, value: int, end: str) -> None:
    if 0 <= at and at + size <= len(blob):
        blob[at : at + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little" if end == "<" else "big")


def _read_int(blob: bytearray, at: int, size: int, end: str) -> int:
    return int.from_bytes(blob[at : at + size], "little" if end == "<" else "big")


def _overwrite(blob: bytearray, at: int, data: bytes) -> None:
    if 0 <= at < len(blob):
        blob[at : at + len(data)] = data[: max(0, len(blob) - at)]


def mutate(rng: random.Random, seed: bytes) -> tuple[bytes, list[str]]:
    """One mutant of `seed` (1 to 4 stacked mutations) and the labels of the mutations applied."""
    blob = bytearray(seed)
    applied: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        shape = layout(bytes(blob))
        kind = rng.choices(list(_KINDS), weights=[weight for weight, _ in _KINDS.values()])[0]
        applies, mutation = _KINDS[kind][1]
        applied.append((mutation if applies(blob, shape) else _flip)(rng, blob, shape))
    return bytes(blob), applied


Mutation = Callable[[random.Random, bytearray, Layout], str]


def _any_field(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    f = rng.choice(shape.fields)
    _write_int(
        blob, f.offset, f.size, interesting(rng, _read_int(blob, f.offset, f.size, shape.end), f.size, len(blob)), shape.end
    )
    return f.label


def _dynamic_field(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    f = rng.choice([f for f in shape.fields if f.label.startswith("DT_")])
    old = _read_int(blob, f.offset, f.size, shape.end)
    value = rng.choice(INTERESTING_TAGS) if f.label.endswith("d_tag") else interesting(rng, old, f.size, len(blob))
    _write_int(blob, f.offset, f.size, value, shape.end)
    return f"{f.label}={value:#x}"


def _dynamic_retag(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    """Many entries turned into DT_NEEDED / DT_RUNPATH, with values spread over the string table."""
    assert shape.dynamic is not None
    offset, size, entsize = shape.dynamic
    w = entsize // 2
    for at in range(offset, min(offset + size, len(blob)) - entsize + 1, entsize):
        if rng.random() < 0.5:
            _write_int(blob, at, w, rng.choice(STRING_TAGS), shape.end)
            _write_int(blob, at + w, w, rng.randrange(0, 4096), shape.end)
    return "dyn_retag"


def _string(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    at, length = rng.choice(shape.strings or shape.section_names)
    if shape.section_names and rng.random() < 0.2:
        at, length = rng.choice(shape.section_names)
        _overwrite(blob, at, b".note.dlopen\0")
        return "section_name=.note.dlopen"
    name = rng.choice(NAMES)
    if rng.random() < 0.5:
        name = name[:length]  # keep the layout of the string table
    _overwrite(blob, at, name + (b"\0" if rng.random() < 0.8 else b""))
    return f"string={name[:24]!r}"


def _note(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    at, size = rng.choice(shape.notes)
    choice = rng.randrange(4)
    notes = [f for f in shape.fields if f.label in ("PT_NOTE.p_offset", "PT_NOTE.p_filesz")]
    if choice == 3 and len(notes) >= 2:
        return _relocated_note(rng, blob, shape, notes)
    if choice == 0:  # header fields
        slot = rng.randrange(3)
        old = _read_int(blob, at + 4 * slot, 4, shape.end)
        _write_int(blob, at + 4 * slot, 4, interesting(rng, old, 4, len(blob)), shape.end)
        return f"note.header[{slot}]"
    if choice == 1:  # payload
        payload = rng.choice(NOTE_PAYLOADS) + b"\0"
        header = struct.pack(shape.end + "III", 4, len(payload), 0x407C0C0A) + b"FDO\0"
        if rng.random() < 0.5:
            payload = payload[: max(0, size - 16)]
            header = struct.pack(shape.end + "III", 4, len(payload), 0x407C0C0A) + b"FDO\0"
        _overwrite(blob, at, header + payload)
        return f"note.payload={payload[:16]!r}"
    for _ in range(rng.randint(1, 8)):
        if size > 0:
            _overwrite(blob, at + rng.randrange(size), bytes([rng.randrange(256)]))
    return "note.bytes"


def _relocated_note(rng: random.Random, blob: bytearray, shape: Layout, notes: list[Field]) -> str:
    """A new note at the end of the file, PT_NOTE pointed at it."""
    payload = rng.choice(NOTE_PAYLOADS) + b"\0"
    name = b"FDO\0" if rng.random() < 0.9 else b"\xff" * 4
    namesz = 4 if rng.random() < 0.9 else rng.choice((1, 0, 0xFFFFFFFF))
    note = struct.pack(shape.end + "III", namesz, len(payload), 0x407C0C0A) + name + payload
    blob.extend(b"\0" * (-len(blob) % 4))
    start = len(blob)
    blob.extend(note)
    at_offset = next(f for f in notes if f.label.endswith("offset"))
    at_size = next(f for f in notes if f.label.endswith("filesz") and f.offset > at_offset.offset)
    _write_int(blob, at_offset.offset, at_offset.size, start, shape.end)
    _write_int(blob, at_size.offset, at_size.size, len(note), shape.end)
    return f"note.relocated={payload[:16]!r}"


def _section(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    at = rng.choice(shape.section_flags)
    if rng.random() < 0.5:
        _write_int(blob, at, 4, _read_int(blob, at, 4, shape.end) | SHF_COMPRESSED, shape.end)
        return "sh_flags|=SHF_COMPRESSED"
    f = rng.choice([f for f in shape.fields if f.label.startswith("sh_")] or [Field(at, 4, "sh_flags")])
    _write_int(
        blob, f.offset, f.size, interesting(rng, _read_int(blob, f.offset, f.size, shape.end), f.size, len(blob)), shape.end
    )
    return f.label


def _truncate(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    cut = rng.choice([rng.randrange(len(blob)), rng.randrange(min(len(blob), 4096))])
    del blob[cut:]
    return f"truncate@{cut}"


def _extend(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    blob.extend(rng.randbytes(rng.randrange(1, 4096)))
    return "extend"


def _flip(rng: random.Random, blob: bytearray, shape: Layout) -> str:
    for _ in range(rng.randint(1, 16)):
        if blob:
            blob[rng.randrange(min(len(blob), rng.choice((256, 4096, len(blob)))))] = rng.randrange(256)
    return "flip"


def _always(blob: bytearray, shape: Layout) -> bool:
    return True


# kind -> (weight, (whether it applies to this file, the mutation)); one that does not apply flips bytes instead.
_KINDS: dict[str, tuple[int, tuple[Callable[[bytearray, Layout], bool], Mutation]]] = {
    "field": (25, (lambda blob, shape: bool(shape.fields), _any_field)),
    "field_dyn": (20, (lambda blob, shape: any(f.label.startswith("DT_") for f in shape.fields), _dynamic_field)),
    "dyn_retag": (8, (lambda blob, shape: bool(shape.dynamic), _dynamic_retag)),
    "string": (14, (lambda blob, shape: bool(shape.strings or shape.section_names), _string)),
    "note": (8, (lambda blob, shape: bool(shape.notes), _note)),
    "section": (8, (lambda blob, shape: bool(shape.section_flags), _section)),
    "truncate": (6, (lambda blob, shape: len(blob) > 1, _truncate)),
    "flip": (8, (_always, _flip)),
    "extend": (3, (_always, _extend)),
}
