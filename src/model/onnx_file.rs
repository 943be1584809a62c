//! Facts read straight from an .onnx file's bytes: the number of parameters (elements of
//! the graph's initializers) and the SHA-256. ONNX Runtime does not expose initializers,
//! so this walks the protobuf wire format for the two fields it needs:
//! ModelProto.graph (7) -> GraphProto.initializer (5) -> TensorProto.dims (1).

use sha2::{Digest, Sha256};

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Calls `f(field, wire_type, payload)` for each field; payload is the bytes of a
/// length-delimited field, or the varint value encoded as empty slice + value.
fn fields<'a>(buf: &'a [u8], mut f: impl FnMut(u64, u64, &'a [u8], u64)) -> Option<()> {
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (field, wt) = (key >> 3, key & 7);
        match wt {
            0 => {
                let v = varint(buf, &mut pos)?;
                f(field, wt, &[], v);
            }
            1 => pos += 8,
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let end = pos.checked_add(len).filter(|&e| e <= buf.len())?;
                f(field, wt, &buf[pos..end], 0);
                pos = end;
            }
            5 => pos += 4,
            _ => return None,
        }
    }
    Some(())
}

/// Total number of initializer elements, or None if the bytes are not a parseable model.
pub fn parameter_count(model: &[u8]) -> Option<u64> {
    let mut graph = None;
    fields(model, |f, wt, p, _| {
        if f == 7 && wt == 2 {
            graph = Some(p);
        }
    })?;
    let mut total = 0u64;
    let mut ok = true;
    fields(graph?, |f, wt, tensor, _| {
        if f == 5 && wt == 2 {
            let mut n = 1u64;
            let r = fields(tensor, |tf, twt, packed, v| {
                if tf == 1 && twt == 0 {
                    n *= v;
                } else if tf == 1 && twt == 2 {
                    let mut pos = 0;
                    while pos < packed.len() {
                        match varint(packed, &mut pos) {
                            Some(d) => n *= d,
                            None => break,
                        }
                    }
                }
            });
            ok &= r.is_some();
            total += n;
        }
    })?;
    ok.then_some(total)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
