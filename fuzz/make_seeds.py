#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/seed-* from the vectors of PROTOCOL.md §10.

Needs python3 and the zstd command-line tool (frames made from files, so they carry the
content size and a checksum, as the reference's do). The seeds are committed; run this again
only when the vectors or the engine_handle input format change:

    python3 fuzz/make_seeds.py
"""

import os
import pathlib
import struct
import subprocess
import tempfile

# §10 (a), (b), (c): full frames (flag byte 0x00 + msgpack), hex as in the spec.
A = bytes.fromhex(
    "0084a174cc01a26964ae3132372e302e302e313a39303030a3696e6382ae3132372e302e302e313a39303030"
    "cf0000000000000003ae3132372e302e302e313a39303031cf0000000000000001a364656381ae3132372e30"
    "2e302e313a39303030cf0000000000000001"
)
B = bytes.fromhex(
    "0085a174cc02a26964ae3132372e302e302e313a39303031a3696e63c0a3646563c0a3646967cf8cf963b0ef"
    "dc56a4"
)
C = bytes.fromhex(
    "0085a174cc03a26964ae3132372e302e302e313a39303030a3696e63c0a3646563c0a3646967cf8cf963b0ef"
    "dc56a4"
)
# §10 (e): messages the reference decodes (msgpack, no flag byte).
# Compact ints, no dec, no dig: Push id "x", inc {a: 5}.
E1 = bytes.fromhex("83a17401a26964a178a3696e6381a16105")
# DigestPull with a compact dig (7) and an unknown key ("zz": [1, 2]), which is ignored.
E2 = bytes.fromhex("84a17402a26964a178a364696707a27a7a920102")

assert len(A) == 106 and len(B) == 47 and len(C) == 47

# msgpack messages (flag byte stripped) and the sender address of their TCP header.
MESSAGES = {
    "a": (A[1:], "127.0.0.1:9000"),
    "b": (B[1:], "127.0.0.1:9001"),
    "c": (C[1:], "127.0.0.1:9000"),
    "e1": (E1, "127.0.0.1:9002"),
    "e2": (E2, "127.0.0.1:9002"),
}

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def zstd(data: bytes, *flags: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "m")
        with open(src, "wb") as f:
            f.write(data)
        return subprocess.run(
            ["zstd", "-q", "-c", *flags, src], check=True, capture_output=True
        ).stdout


def header(addr: str) -> bytes:
    a = addr.encode()
    return bytes([len(a)]) + a


def write(target: str, name: str, data: bytes) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


# engine_handle ops (see fuzz_targets/engine_handle.rs).
def op_frame(frame: bytes, from_idx: int = 0, dt: int = 0) -> bytes:
    return bytes([2, dt, from_idx]) + struct.pack("<H", len(frame)) + frame


def op_timeout(ms: int, seed: int) -> bytes:
    return bytes([5]) + struct.pack("<H", ms // 10) + bytes([seed])


def op_drain(delivered: int = 0xFF) -> bytes:
    return bytes([6, delivered])


def op_push(from_idx, sender, flags, entries, mutate=None) -> bytes:
    out = bytes([4 if mutate is not None else 3, 0, from_idx, sender, flags, len(entries)])
    for ident, inc, dec in entries:
        out += bytes([ident, inc, dec])
    if mutate is not None:
        out += bytes([len(mutate)])
        for pos, xor in mutate:
            out += struct.pack("<H", pos) + bytes([xor])
    return out


def main() -> None:
    for name, (msg, addr) in MESSAGES.items():
        write("message_parse", name, msg)
        write("frame_parse", name, header(addr) + b"\x00" + msg)
        write("zstd_frame", name, zstd(msg))
    # A frame as the reference compresses it (content size + checksum), and one without
    # a checksum.
    write("frame_parse", "zstd", header("127.0.0.1:9000") + b"\x80" + zstd(A[1:]))
    write("zstd_frame", "a-nocheck", zstd(A[1:], "--no-check"))
    # Frames whose compressed block declares more than RFC 8878's Block_Maximum_Size allows;
    # ruzstd allocates for them and decodes them, libzstd does not (see zstd_frame.rs).
    # The first and the last were found by this target; the second has a 1 KiB window and
    # 2^20 - 1 RLE literals.
    write("zstd_frame", "oversized-block", bytes.fromhex("28b52ffd00290000002d0000cd00413500"))
    write("zstd_frame", "rle-literals-1mib", bytes.fromhex("28b52ffd00002d0000fdffff3500"))
    # A 57-byte block of a 105-byte window declaring 20,224 sequences (ruzstd reserves them).
    write(
        "zstd_frame",
        "many-sequences",
        bytes.fromhex(
            "28b52ffd2069cd0100740284a174cc3ba26964ae3132372e300000002e302e313a3900007b55498b"
            "5980303030a3696e6382cf0003310130d8d8d8d8d8d8d8d8000284"
        ),
    )
    # Reserved bits set in Symbol_Compression_Modes (0x01 after the 6 sequences): libzstd
    # rejects the frame, ruzstd decodes it. Found by this target.
    write(
        "zstd_frame",
        "reserved-bits",
        bytes.fromhex(
            "28b52ffd0021cd0100740284a174cc01a26964ae3132372e302e302e313a39303030a3696e6382cf"
            "00033101a364656381300601601144c902efed3d0c8735ae9b79"
        ),
    )

    add_peer_b = bytes([7, 0])
    write("engine_handle", "a", op_frame(A) + op_drain() + op_timeout(2000, 1) + op_drain())
    write("engine_handle", "b", add_peer_b + op_frame(B) + op_drain())
    write("engine_handle", "c", op_frame(C, from_idx=1) + op_drain(0))
    write(
        "engine_handle",
        "e",
        op_frame(b"\x00" + E1) + op_frame(b"\x00" + E2) + bytes([0, 5]) + op_drain(),
    )
    write(
        "engine_handle",
        "zstd",
        op_frame(b"\x80" + zstd(A[1:])) + op_timeout(20000, 3) + op_drain(0x55),
    )
    write(
        "engine_handle",
        "push",
        add_peer_b
        + op_push(0, 1, 0, [(1, 3, 1), (6, 9, 0), (0, 2, 2)])
        + bytes([1, 2])
        + op_push(1, 2, 1 | 2 | 8, [(7, 1, 0), (6, 10, 4), (7, 5, 5)])
        + op_timeout(2500, 7)
        + op_drain(0x55)
        + op_push(0, 1, 0, [(8, 1, 1)], mutate=[(20, 0x01)]),
    )


if __name__ == "__main__":
    main()
