//! Datastar SSE framing: `datastar-patch-elements` events, written by hand so
//! that each element's lines are encoded once and shared by every client.

use bytes::{BufMut, Bytes, BytesMut};

/// The event every candle patch is sent as.
pub const PATCH_ELEMENTS: &str = "datastar-patch-elements";

/// A comment line: keeps idle connections (and proxies) open; clients ignore it.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// The `data:` lines of one element: `data: elements <line>` per line of HTML
/// (carriage returns dropped, never a line without the `elements ` key).
pub fn element_lines(element: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(element.len() + 16);
    // The usual element is one line: one pass to check, one copy.
    if !element.bytes().any(|b| b == b'\n' || b == b'\r') {
        out.put_slice(b"data: elements ");
        out.put_slice(element.as_bytes());
        out.put_u8(b'\n');
        return out.freeze();
    }
    for line in element.split('\n') {
        out.put_slice(b"data: elements ");
        if line.contains('\r') {
            out.extend(line.bytes().filter(|&b| b != b'\r'));
        } else {
            out.put_slice(line.as_bytes());
        }
        out.put_u8(b'\n');
    }
    out.freeze()
}

/// One event: the type, the id, the given `data:` lines, a blank line.
pub fn event<'a>(id: &str, lines: impl Iterator<Item = &'a Bytes> + Clone) -> Bytes {
    let len: usize = lines.clone().map(Bytes::len).sum();
    let mut out = BytesMut::with_capacity(len + PATCH_ELEMENTS.len() + id.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(PATCH_ELEMENTS.as_bytes());
    out.put_slice(b"\nid: ");
    out.put_slice(id.as_bytes());
    out.put_u8(b'\n');
    for l in lines {
        out.put_slice(l);
    }
    out.put_u8(b'\n');
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_the_datastar_framing() {
        let a = element_lines("<spot-candle id=\"A\"></spot-candle>");
        let b = element_lines("<div>\r\n  <span>x</span>\n\n</div>");
        let e = event("1700000000000-7", [a, b].iter());
        assert_eq!(
            std::str::from_utf8(&e).unwrap(),
            "event: datastar-patch-elements\nid: 1700000000000-7\n\
             data: elements <spot-candle id=\"A\"></spot-candle>\n\
             data: elements <div>\n\
             data: elements   <span>x</span>\n\
             data: elements \n\
             data: elements </div>\n\n"
        );
    }
}
