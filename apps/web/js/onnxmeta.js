// Reads ModelProto.metadata_props (field 14) straight from the ONNX protobuf bytes.
// onnxruntime-web has no API for the metadata, and edgemtl embeds its manifest there, so one
// .onnx file is enough for the page. Walking the top-level fields also tells a truncated or
// non-ONNX file apart before ONNX Runtime answers with a less helpful error.

function varint(bytes, pos) {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.length) throw new Error(`the file ends inside a field header at byte ${pos}`);
    const b = bytes[pos++];
    value += (b & 0x7f) * scale;  // multiplication, not shifts: lengths may pass 2^31
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
  throw new Error(`malformed varint at byte ${pos}`);
}

const utf8 = new TextDecoder('utf-8');

function stringEntry(bytes) {
  const entry = {};
  let pos = 0;
  while (pos < bytes.length) {
    const [tag, p] = varint(bytes, pos);
    if ((tag & 7) !== 2) throw new Error('malformed metadata entry');
    const [len, start] = varint(bytes, p);
    if (start + len > bytes.length) throw new Error('malformed metadata entry');
    entry[tag >> 3] = utf8.decode(bytes.subarray(start, start + len));
    pos = start + len;
  }
  return [entry[1] ?? '', entry[2] ?? ''];
}

// Uint8Array of an .onnx file -> {key: value} of its metadata_props. Throws on a file that is not
// a complete ModelProto (no graph, a field running past the end, an impossible wire type).
export function readOnnxMetadata(bytes) {
  const props = {};
  let pos = 0;
  let hasGraph = false;
  while (pos < bytes.length) {
    const [tag, p] = varint(bytes, pos);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) throw new Error(`invalid field number 0 at byte ${pos}`);
    pos = p;
    if (wire === 0) {
      pos = varint(bytes, pos)[1];
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 2) {
      const [len, start] = varint(bytes, pos);
      if (start + len > bytes.length) {
        throw new Error(`field ${field} needs ${start + len} bytes but the file has ${bytes.length}: it is truncated`);
      }
      if (field === 7) hasGraph = true;
      if (field === 14) {
        const [k, v] = stringEntry(bytes.subarray(start, start + len));
        props[k] = v;
      }
      pos = start + len;
    } else {
      throw new Error(`wire type ${wire} at byte ${pos} does not occur in ONNX files`);
    }
    if (pos > bytes.length) throw new Error(`the file ends inside field ${field}: it is truncated`);
  }
  if (!hasGraph) throw new Error('it has no graph');
  return props;
}
