//! Datastar SSE framing: `datastar-patch-elements` events, written by hand so
//! that each element is kept once and shared by every client.

use bytes::{BufMut, Bytes, BytesMut};

/// The event every candle patch is sent as.
pub const PATCH_ELEMENTS: &str = "datastar-patch-elements";

/// A comment line: keeps idle connections (and proxies) open; clients ignore it.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// What starts every element line.
const DATA_ELEMENTS: &[u8] = b"data: elements ";

/// One element as the hub keeps it and every subscriber shares it.
///
/// The usual element is one line: it is kept as the component rendered it
/// (no copy) and gets its `data: elements ` prefix when an event is written.
/// Any other is framed once, up front, into one such line per line of HTML
/// (carriage returns dropped, never a line without the `elements ` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    bytes: Bytes,
    /// `bytes` already holds the `data:` lines.
    framed: bool,
}

impl Element {
    /// Keep `html` for sending.
    pub fn new(html: Bytes) -> Self {
        // Every update's element passes here (the engine's thread): a
        // vectorised search, not a byte loop.
        if memchr::memchr2(b'\n', b'\r', &html).is_some() {
            Element {
                bytes: element_lines(&html),
                framed: true,
            }
        } else {
            Element {
                bytes: html,
                framed: false,
            }
        }
    }

    /// Bytes this element takes in an event.
    pub fn framed_len(&self) -> usize {
        if self.framed {
            self.bytes.len()
        } else {
            DATA_ELEMENTS.len() + self.bytes.len() + 1
        }
    }

    fn write_to(&self, out: &mut BytesMut) {
        if self.framed {
            out.put_slice(&self.bytes);
        } else {
            out.put_slice(DATA_ELEMENTS);
            out.put_slice(&self.bytes);
            out.put_u8(b'\n');
        }
    }
}

/// The `data:` lines of a multi-line element: `data: elements <line>` per line.
fn element_lines(html: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(html.len() + 16);
    for line in html.split(|&b| b == b'\n') {
        out.put_slice(DATA_ELEMENTS);
        out.extend(line.iter().copied().filter(|&b| b != b'\r'));
        out.put_u8(b'\n');
    }
    out.freeze()
}

/// One event: the type, the id, the elements' `data:` lines, a blank line.
pub fn event<'a>(id: &str, elements: impl Iterator<Item = &'a Element> + Clone) -> Bytes {
    let len: usize = elements.clone().map(Element::framed_len).sum();
    let mut out = BytesMut::with_capacity(len + PATCH_ELEMENTS.len() + id.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(PATCH_ELEMENTS.as_bytes());
    out.put_slice(b"\nid: ");
    out.put_slice(id.as_bytes());
    out.put_u8(b'\n');
    for e in elements {
        e.write_to(&mut out);
    }
    out.put_u8(b'\n');
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_the_datastar_framing() {
        let a = Element::new(Bytes::from_static(b"<spot-candle id=\"A\"></spot-candle>"));
        let b = Element::new(Bytes::from_static(b"<div>\r\n  <span>x</span>\n\n</div>"));
        let elements = [a.clone(), a, b];
        let e = event("1700000000000-7", elements.iter());
        assert_eq!(
            std::str::from_utf8(&e).unwrap(),
            "event: datastar-patch-elements\nid: 1700000000000-7\n\
             data: elements <spot-candle id=\"A\"></spot-candle>\n\
             data: elements <spot-candle id=\"A\"></spot-candle>\n\
             data: elements <div>\n\
             data: elements   <span>x</span>\n\
             data: elements \n\
             data: elements </div>\n\n"
        );
        // The size announced for each element is what it takes in the event.
        let head = "event: datastar-patch-elements\nid: 1700000000000-7\n".len();
        assert_eq!(
            e.len(),
            head + elements.iter().map(Element::framed_len).sum::<usize>() + 1
        );
    }
}
