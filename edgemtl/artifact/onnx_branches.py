"""The per-task graphs inside a specialised ONNX artifact, cut out without the ``onnx`` package.

An ``onnx`` export with ``graphs=specialized`` is one file: a task selector and a chain of ``If``
nodes, branch ``i`` being the model specialised to task ``i`` (edgemtl.export.targets.onnx,
``merge_branches``). ONNX Runtime runs that file, but at a cost (benchmarks/README.md): branches
whose weights live in the outer graph (``shared_weights=true``) miss its NCHWc convolution layout
(1.9x slower on x86), and branches holding their own weights make the session keep them several
times (328 MB for a 44 MB file).

:func:`split` reads the file's protobuf wire format and returns, for each task, a standalone ONNX
model: the branch's nodes, its own weights plus the outer-graph weights it reads, the image input and
its output. Each is a single-task graph to ONNX Runtime (every layout pass applies), built only when
its task is first asked for; the file on disk stays one artifact with common weights stored once.
Only the graph structure is decoded: weights are copied as raw byte ranges, never parsed.

Protobuf field numbers (onnx.proto3): ModelProto graph=7, metadata_props=14; GraphProto node=1,
name=2, initializer=5, input=11, output=12; NodeProto input=1, op_type=4, attribute=5; AttributeProto
name=1, g=6; TensorProto name=8; ValueInfoProto name=1, type=2; TypeProto tensor_type=1;
TypeProto.Tensor elem_type=1, shape=2; TensorShapeProto dim=1; Dimension dim_value=1.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from edgemtl.errors import EdgeMTLError

GRAPH_NAME = "edgemtl_specialized"  # the outer graph's name, written by merge_branches
_ELEM = {1: "float32", 7: "int64"}


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview) -> list[tuple[int, int, int, int, int]]:
    """Every field of one message: (number, wire type, value or start, end, start of its tag)."""
    out, i, n = [], 0, len(buf)
    while i < n:
        tag_at = i
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((num, wire, value, i, tag_at))
        elif wire == 2:
            length, i = _varint(buf, i)
            out.append((num, wire, i, i + length, tag_at))
            i += length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((num, wire, i, i + width, tag_at))
            i += width
        else:
            raise ValueError(f"protobuf wire type {wire}")
    return out


def _sub(buf: memoryview, fields, num: int) -> list[memoryview]:
    return [buf[a:b] for f, w, a, b, _ in fields if f == num and w == 2]


def _string(buf: memoryview, fields, num: int) -> str:
    parts = _sub(buf, fields, num)
    return bytes(parts[0]).decode() if parts else ""


def _key(num: int) -> bytes:
    return _encode_varint((num << 3) | 2)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len_field(num: int, payload: bytes | memoryview) -> bytes:
    return _key(num) + _encode_varint(len(payload)) + bytes(payload)


def _raw(buf: memoryview, entry) -> memoryview:
    """A field exactly as stored (tag, length and payload), without copying it."""
    return buf[entry[4] : entry[3]]


def _value_info(buf: memoryview) -> tuple[str, str, list[int]]:
    """ValueInfoProto -> (name, dtype, shape); symbolic dimensions read as 0."""
    f = _fields(buf)
    name, dtype, shape = _string(buf, f, 1), "?", []
    for t in _sub(buf, f, 2):
        for tensor in _sub(t, _fields(t), 1):
            tf = _fields(tensor)
            dtype = next((_ELEM.get(v, str(v)) for n, w, v, _, _ in tf if n == 1 and w == 0), "?")
            for s in _sub(tensor, tf, 2):
                for dim in _sub(s, _fields(s), 1):
                    shape.append(next((v for n, w, v, _, _ in _fields(dim) if n == 1 and w == 0), 0))
    return name, dtype, shape


@dataclass
class Branches:
    """A specialised artifact, split: ``model(i)`` is task ``i``'s standalone ONNX model (bytes)."""

    count: int
    image: str  # input names and specs of the artifact, as its selector reads them
    task: str
    task_dtype: str
    output_shape: list[int]
    _head: bytes  # the ModelProto's fields other than the graph and the metadata
    _image_input: memoryview
    # name -> the initializer field: views into the file (they keep its buffer or mmap alive)
    _outer_inits: dict[str, memoryview]
    _graphs: list[tuple[memoryview, list]]

    def model(self, i: int) -> bytes:
        buf, fields = self._graphs[i]
        reads = set()
        for node in _sub(buf, fields, 1):
            reads.update(bytes(v).decode() for v in _sub(node, _fields(node), 1))
        parts = [_raw(buf, e) for e in fields if e[0] in (1, 5) and e[1] == 2]  # nodes, own weights
        parts += [raw for name, raw in self._outer_inits.items() if name in reads]
        parts += [_len_field(2, f"task_{i}".encode()), self._image_input]
        parts += [_raw(buf, e) for e in fields if e[0] == 12 and e[1] == 2]  # its output
        return self._head + _len_field(7, b"".join(parts))


def split(data: bytes | mmap.mmap) -> Branches | None:
    """The per-task graphs of a ``graphs=specialized`` artifact; None for any other ONNX model."""
    buf = memoryview(data)
    try:
        top = _fields(buf)
        graphs = _sub(buf, top, 7)
        if len(graphs) != 1:
            return None
        g = graphs[0]
        gf = _fields(g)
        if _string(g, gf, 2) != GRAPH_NAME:
            return None
        return _parse(buf, top, g, gf)
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise EdgeMTLError(f"ONNX model is not valid protobuf (truncated or corrupt?): {e}") from None


def _parse(buf: memoryview, top, g: memoryview, gf) -> Branches:
    inputs = [_value_info(v) for v in _sub(g, gf, 11)]
    outputs = [_value_info(v) for v in _sub(g, gf, 12)]
    if len(inputs) != 2 or len(outputs) != 1:
        raise EdgeMTLError(
            f"specialised ONNX graph: expected inputs (image, task) and one output, got {inputs}"
        )
    outer_inits = {}
    for e in gf:
        if e[0] == 5 and e[1] == 2:
            t = g[e[2] : e[3]]
            outer_inits[_string(t, _fields(t), 8)] = _raw(g, e)
    branch_graphs, scope, sf = [], g, gf
    while True:  # If(cond_0, branch_0, If(cond_1, branch_1, ... NaN))
        ifs = [n for n in _sub(scope, sf, 1) if _string(n, _fields(n), 4) == "If"]
        if not ifs:
            break
        attrs = {}
        for a in _sub(ifs[0], _fields(ifs[0]), 5):
            af = _fields(a)
            attrs[_string(a, af, 1)] = _sub(a, af, 6)[0]
        then = attrs["then_branch"]
        branch_graphs.append((then, _fields(then)))
        scope = attrs["else_branch"]
        sf = _fields(scope)
    if not branch_graphs:
        raise EdgeMTLError("specialised ONNX graph without If branches (not written by edgemtl?)")
    head = b"".join(_raw(buf, e) for e in top if e[0] not in (7, 14))
    image_at = next(e for e in gf if e[0] == 11 and e[1] == 2)
    return Branches(
        count=len(branch_graphs),
        image=inputs[0][0],
        task=inputs[1][0],
        task_dtype=inputs[1][1],
        output_shape=outputs[0][2],
        _head=head,
        _image_input=_raw(g, image_at),
        _outer_inits=outer_inits,
        _graphs=branch_graphs,
    )
